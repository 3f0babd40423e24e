"""``manage.py sync_consume``: apply events from this project's queue (kombu ConsumerMixin, ack after commit)."""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from servicekit.cli_parser import OneLineErrorCommandMixin
from strangler_sync.broker import broker_connection
from strangler_sync.conf import sync_settings
from strangler_sync.consumer import SyncConsumer


class Command(OneLineErrorCommandMixin, BaseCommand):
    help = "Consume STRANGLER_SYNC['QUEUE'] and apply each event through the registered sync handlers."

    def add_arguments(self, parser):
        # The defaults are what bench/sync_bench.py measures (PostgreSQL + RabbitMQ, 2 consumers on 2 cores):
        # bigger batches amortise each transaction's fixed statements and commit; the prefetch keeps the next
        # batch arriving while one is applied.
        parser.add_argument("--prefetch", type=int, default=400,
                            help="unacked messages the broker may send ahead (default 400)")
        parser.add_argument("--batch", type=int, default=200,
                            help="events applied per transaction, at most (default 200; a message carrying an "
                                 "array is never split; a partial batch waits at most 20 ms)")

    def handle(self, *args, prefetch, batch, **options):
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        config = sync_settings()
        self.stdout.write(f"consuming {config.queue} ({', '.join(config.subscriptions)}) from {config.broker_url}")
        self.stdout.flush()
        try:
            with broker_connection() as connection:
                consumer = SyncConsumer(connection, prefetch=prefetch, batch=batch, stop_event=stop)
                consumer.run()
        except Exception as exc:  # outages are retried inside run(); anything else stops with the reason
            raise CommandError(f"consumer stopped: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(f"stopped after {consumer.handled} message(s)")
