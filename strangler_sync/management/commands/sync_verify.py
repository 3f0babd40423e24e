"""``manage.py sync_verify --aggregate product --source URL --follower URL [--repair]``; exit 1 on differences."""

import json

from django.core.management.base import BaseCommand, CommandError

from servicekit.cli_parser import OneLineErrorCommandMixin
from strangler_sync.conf import sync_settings
from strangler_sync.services import aggregate_reemit
from strangler_sync.verify import VerifyError, verify_aggregate


class Command(OneLineErrorCommandMixin, BaseCommand):
    help = "Compare an aggregate between source and follower via their /sync/checksums endpoints."

    def add_arguments(self, parser):
        parser.add_argument("--aggregate", required=True)
        parser.add_argument("--source", required=True, help="base URL of the owner, e.g. http://127.0.0.1:8000")
        parser.add_argument("--follower", required=True, help="base URL of the follower")
        parser.add_argument("--buckets", type=int, default=256)
        parser.add_argument("--repair", action="store_true",
                            help="re-emit differing ids from this project's database (run it in the owner)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, aggregate, source, follower, buckets, repair, json: bool, **options):
        try:
            result = verify_aggregate(source=source, follower=follower, aggregate=aggregate, buckets=buckets,
                                      token=sync_settings().verify_token or None)
        except VerifyError as exc:
            raise CommandError(str(exc)) from exc
        if json:
            self.stdout.write(_json_dumps(result.as_dict()))
        else:
            self.stdout.write(
                f"{aggregate}: source {result.source_count} rows, follower {result.follower_count} rows, "
                f"{result.buckets_differing}/{result.buckets_compared} buckets differ, {result.differences} "
                f"difference(s) in {result.seconds:.2f}s"
            )
            for label, ids in (("missing", result.missing), ("extra", result.extra), ("changed", result.changed)):
                if ids:
                    self.stdout.write(f"  {label} ({len(ids)}): {' '.join(map(str, ids[:200]))}"
                                      + (" ..." if len(ids) > 200 else ""))
        if repair and result.differences:
            counts = aggregate_reemit(aggregate_type=aggregate,
                                      ids=result.missing + result.extra + result.changed)
            self.stdout.write(f"repair: re-emitted {counts['snapshots']} snapshot(s), {counts['deletes']} delete(s)"
                              f" (skipped {counts['skipped']}); the relay publishes them")
        if result.differences:
            raise SystemExit(1)


def _json_dumps(data) -> str:
    return json.dumps(data, indent=2)
