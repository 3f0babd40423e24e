"""``manage.py sync_ownership [--set product=catalog[@EPOCH]]``: show or change who owns writes of each aggregate.

The rows live in this project's database (``strangler_sync.ownership``): run the command on every project of
the migration with the same epoch (the control plane's flip does that over ``POST /sync/ownership/``).
"""

from django.core.management.base import BaseCommand, CommandError

from servicekit.cli_parser import OneLineErrorCommandMixin
from strangler_sync.conf import sync_settings
from strangler_sync.errors import StaleEpoch
from strangler_sync.ownership import ownership_set, ownership_states


class Command(OneLineErrorCommandMixin, BaseCommand):
    help = ("Print who owns each aggregate type and its epoch, or flip one (AGGREGATE=OWNER bumps the epoch by "
            "one; AGGREGATE=OWNER@EPOCH sets it, as the control plane does on every project).")

    def add_arguments(self, parser):
        parser.add_argument("--set", dest="assignments", action="append", default=[],
                            metavar="AGGREGATE=OWNER[@EPOCH]")

    def handle(self, *args, assignments, **options):
        parsed = []
        for item in assignments:
            aggregate, sep, owner = item.partition("=")
            owner, at, epoch = owner.partition("@")
            if not sep or not aggregate.strip() or not owner.strip() or (at and not epoch.strip().isdigit()):
                raise CommandError(f"--set expects AGGREGATE=OWNER[@EPOCH], got {item!r}")
            parsed.append((aggregate.strip(), owner.strip(), int(epoch) if at else None))
        for aggregate, owner, epoch in parsed:
            try:
                ownership_set(aggregate_type=aggregate, owner=owner, epoch=epoch)
            except StaleEpoch as exc:
                raise CommandError(str(exc)) from None
        config = sync_settings()
        self.stdout.write(f"ownership in the database of {config.origin} (seed file: {config.ownership_file}, "
                          f"default owner: {config.default_owner})")
        for state in ownership_states():
            seed = "" if state["stored"] else " (seed, not stored yet)"
            self.stdout.write(f"  {state['aggregate']}: {state['owner']} epoch {state['epoch']}{seed}")
