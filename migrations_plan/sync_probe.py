"""``DJANGO_SETTINGS_MODULE=... python -m migrations_plan.sync_probe``: print a project's outbox gauges.

Run by the relay gates in the project's own environment; the numbers come from strangler_sync's own
``relay_gauges_update`` (pending rows, oldest pending age, dead rows) over that project's database.
"""

import sys

import django


def main() -> int:
    django.setup()
    from prometheus_client import REGISTRY, generate_latest

    from strangler_sync.relay import relay_gauges_update

    relay_gauges_update()
    text = generate_latest(REGISTRY).decode()
    sys.stdout.write("\n".join(line for line in text.splitlines() if "strangler_sync_outbox" in line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
