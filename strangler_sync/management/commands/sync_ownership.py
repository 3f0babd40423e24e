"""``manage.py sync_ownership [--set product=catalog]``: show or change who owns writes of each aggregate."""

from django.core.management.base import BaseCommand, CommandError

from servicekit.cli_parser import OneLineErrorCommandMixin
from strangler_sync.conf import sync_settings
from strangler_sync.ownership import ownership_map, ownership_set


class Command(OneLineErrorCommandMixin, BaseCommand):
    help = "Print the ownership map, or set an aggregate's owner (atomic file replace)."

    def add_arguments(self, parser):
        parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="AGGREGATE=OWNER")

    def handle(self, *args, assignments, **options):
        for item in assignments:
            aggregate, sep, owner = item.partition("=")
            if not sep or not aggregate or not owner:
                raise CommandError(f"--set expects AGGREGATE=OWNER, got {item!r}")
            ownership_set(aggregate_type=aggregate.strip(), owner=owner.strip())
        config = sync_settings()
        self.stdout.write(f"ownership file: {config.ownership_file} (default owner: {config.default_owner})")
        for aggregate, owner in sorted(ownership_map().items()):
            self.stdout.write(f"  {aggregate}: {owner}")
