"""``manage.py sync_backfill --aggregate product [--aggregate category ...] [--batch 1000] [--resume] [--direct]``."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from servicekit.cli_parser import OneLineErrorCommandMixin
from strangler_sync.backfill import backfill_run
from strangler_sync.checksums import aggregate_stats
from strangler_sync.errors import UnknownAggregate


class Command(OneLineErrorCommandMixin, BaseCommand):
    help = "Emit every row of an aggregate as snapshot events (resumable; safe alongside live writes)."

    def add_arguments(self, parser):
        parser.add_argument("--aggregate", required=True, action="append",
                            help="the aggregate to backfill; repeat for several, backfilled in the order given")
        parser.add_argument("--batch", type=int, default=1000)
        parser.add_argument("--resume", action="store_true", help="continue after the last checkpointed id")
        parser.add_argument("--direct", action="store_true", help="publish to the broker instead of the outbox")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, aggregate, batch, resume, direct, no_progress, **options):
        try:
            totals = {name: aggregate_stats(aggregate_type=name)["count"] for name in aggregate}
        except UnknownAggregate as exc:
            raise CommandError(exc.message) from exc
        for name, total in totals.items():
            with tqdm(total=total, unit="row", disable=no_progress, desc=f"backfill {name}") as bar:
                result = backfill_run(
                    aggregate_type=name, batch_size=batch, resume=resume, direct=direct, progress=bar.update
                )
            rate = result.emitted / result.seconds if result.seconds else 0.0
            self.stdout.write(
                f"backfill {name}: {result.emitted} snapshot(s) {'published' if direct else 'written to the outbox'}"
                f" in {result.seconds:.2f}s ({rate:,.0f} rows/s), last id {result.last_id}"
            )
