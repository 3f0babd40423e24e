"""``manage.py sync_capture_migration <app_label> [--check] [--dry-run]``: write the migration that installs the
app's automatic-capture triggers (``strangler_sync.capture_migration``); nothing when they are in step."""

from django.core.management.base import BaseCommand, CommandError

from servicekit.cli_parser import OneLineErrorCommandMixin
from strangler_sync.capture import CaptureUnsupported
from strangler_sync.capture_migration import capture_migration_write


class Command(OneLineErrorCommandMixin, BaseCommand):
    help = "Write a migration installing (or updating) the change-capture triggers of an app's aggregates."
    requires_system_checks = []  # it fixes what strangler_sync.E007 reports

    def add_arguments(self, parser):
        parser.add_argument("app_label")
        parser.add_argument("--dry-run", action="store_true", help="say what would be written, write nothing")
        parser.add_argument("--check", action="store_true",
                            help="exit non-zero if a migration is needed (for CI), write nothing")

    def handle(self, *args, app_label, dry_run, check, **options):
        try:
            result = capture_migration_write(app_label=app_label, dry_run=dry_run or check)
        except (CaptureUnsupported, ValueError, LookupError) as error:
            raise CommandError(str(error)) from None
        if result.path is None:
            self.stdout.write(f"No changes: {app_label}'s capture triggers are in step "
                              f"({', '.join(result.aggregates) or 'no automatic aggregate'})")
            return
        if check:
            raise CommandError(f"{app_label}'s capture triggers differ from its migrations: "
                               f"run manage.py sync_capture_migration {app_label}")
        verb = "Would write" if dry_run else "Wrote"
        self.stdout.write(f"{verb} {result.path} (capture: {', '.join(result.aggregates) or 'none'})")
