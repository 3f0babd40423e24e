"""``manage.py sync_reconcile --aggregate product --source URL --follower URL [--every 30 | --once]``.

Run it in the owner's project: each pass verifies over HTTP and re-emits differing keys from this database.
"""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from servicekit.cli_parser import OneLineErrorCommandMixin
from strangler_sync.conf import sync_settings
from strangler_sync.errors import UnknownAggregate
from strangler_sync.models import ReconcileState
from strangler_sync.reconcile import reconcile_pass


class Command(OneLineErrorCommandMixin, BaseCommand):
    help = ("Reconcile aggregates with a follower on a schedule: verify (bucket checksums), re-emit what differs, "
            "record the pass for /sync/reconcile/ and /metrics. Loops until SIGTERM/SIGINT; --once for cron.")

    def add_arguments(self, parser):
        parser.add_argument("--aggregate", action="append", required=True, help="repeat for several aggregates")
        parser.add_argument("--source", required=True, help="base URL of this project (the owner)")
        parser.add_argument("--follower", required=True, help="base URL of the follower")
        parser.add_argument("--every", type=float, default=30.0, help="seconds between passes (default 30)")
        parser.add_argument("--once", action="store_true",
                            help="one pass per aggregate, then exit: 0 clean, 1 differences repaired, 2 failed")
        parser.add_argument("--buckets", type=int, default=256)
        parser.add_argument("--timeout", type=float, default=120.0, help="per checksum request, seconds")

    def handle(self, *args, aggregate, source, follower, every, once, buckets, timeout, **options):
        if every <= 0 or buckets < 2 or timeout <= 0:
            raise CommandError("--every and --timeout must be positive and --buckets at least 2")
        if len(follower) > ReconcileState._meta.get_field("follower").max_length:
            raise CommandError("--follower: a base URL of at most 300 characters")
        try:
            for name in aggregate:
                sync_settings().aggregate(name)
        except UnknownAggregate as exc:
            raise CommandError(str(exc)) from exc
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        while True:
            states = [reconcile_pass(aggregate_type=name, source=source, follower=follower, buckets=buckets,
                                     timeout=timeout) for name in aggregate]
            for state in states:
                self.stdout.write(
                    f"{state.aggregate_type} -> {follower}: {state.last_status}, {state.last_differences} "
                    f"difference(s), {state.last_repaired} re-emitted in {state.last_duration_seconds:.2f}s"
                    + (f": {state.last_error}" if state.last_error else ""))
            if once:
                statuses = {state.last_status for state in states}
                if ReconcileState.Status.FAILED in statuses:
                    raise SystemExit(2)
                raise SystemExit(1 if ReconcileState.Status.REPAIRED in statuses else 0)
            if stop.wait(every):
                return
