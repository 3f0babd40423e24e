"""``manage.py sync_relay``: publish the outbox continuously (or ``--once``), an alternative to the Celery worker."""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from servicekit.cli_parser import OneLineErrorCommandMixin
from strangler_sync.relay import relay_run


class Command(OneLineErrorCommandMixin, BaseCommand):
    help = "Publish pending outbox events to the broker (loops until SIGTERM/SIGINT; --once drains and exits)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="publish everything due, then exit")
        # 20 ms: an idle poll is one index probe (outbox_pending_idx), and each stage of the lag budget should
        # add only milliseconds (at 0.2 s the poll alone added 100 ms on average)
        parser.add_argument("--interval", type=float, default=0.02,
                            help="idle poll interval in seconds (default 0.02); STRANGLER_SYNC['BATCH_SIZE'] rows "
                                 "per batch")

    def handle(self, *args, once, interval, **options):
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        try:
            total = relay_run(stop=stop, interval=interval, once=once)
        except Exception as exc:  # not an outage (those are retried inside): stop with the reason, exit 1
            raise CommandError(f"relay stopped: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(f"published {total} event(s)")
