"""Cancel orders stuck in 'placed' after a crash mid-payment: stock back on the shelf, refund recorded."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand

from monolith.orders.services import order_expire_stale


class Command(BaseCommand):
    help = "Cancel orders that have been 'placed' (payment in progress) for too long; run it from cron."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=float, default=900.0, help="seconds (default 900)")

    def handle(self, *args, older_than: float, **options):
        expired = order_expire_stale(older_than=timedelta(seconds=older_than))
        for order in expired:
            self.stdout.write(f"cancelled {order.reference} (stock released, refund attempted)")
        self.stdout.write(f"{len(expired)} stale order(s) cancelled")
