"""``DJANGO_SETTINGS_MODULE=... python -m migrations_plan.dashboard.probe``: a project's data-plane state as JSON.

Run in the project's own environment (its database settings), like the relay gates' probe: the outbox
numbers come from strangler_sync's own ``outbox_stats`` and the dead letters from its ``DeadLetter`` table.
"""

import json
import sys

import django


def main() -> int:
    django.setup()
    from strangler_sync.models import DeadLetter
    from strangler_sync.selectors import outbox_stats

    stats = outbox_stats()
    last = DeadLetter.objects.order_by("-id").values("event_type", "error").first()
    json.dump({
        "backlog": stats["pending"],
        "oldest_pending_age_seconds": round(stats["oldest_pending_age_seconds"], 3),
        "outbox_dead": stats["dead"],
        "published": stats["published"],
        "dead_letters": DeadLetter.objects.count(),
        "last_dead_letter": f"{last['event_type']}: {last['error'][:200]}" if last else None,
    }, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
