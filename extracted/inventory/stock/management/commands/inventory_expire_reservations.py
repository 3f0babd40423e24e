"""`manage.py inventory_expire_reservations --older-than SECONDS`: release reservations no checkout finished (cron)."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand

from extracted.inventory.stock.services import reservations_expire_stale


class Command(BaseCommand):
    help = (
        "Release reservations still active after --older-than seconds: their checkout died between reserve and "
        "confirm (or could not reach this service to release). Run it from cron once this service owns stock."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, default=900, help="seconds (default 900)")

    def handle(self, *args, older_than: int, **options):
        released = reservations_expire_stale(older_than=timedelta(seconds=older_than))
        self.stdout.write(f"released {len(released)} reservation(s)" + (f": {', '.join(released)}" if released else ""))
