"""`manage.py catalog_id_sequences [--headroom N]`: move id allocation above every id synced from the monolith."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from extracted.catalog.products.bootstrap import id_sequences_advance


class Command(BaseCommand):
    help = (
        "Run before this service owns catalog writes: new categories/products get ids above "
        "max(id) + headroom, so they never clash with ids the monolith allocated."
    )

    def add_arguments(self, parser):
        parser.add_argument("--headroom", type=int, default=0, help="ids left free above the current maximum")

    def handle(self, *args, headroom: int, **options):
        for table, next_id in id_sequences_advance(headroom=headroom).items():
            self.stdout.write(f"{table}: next id {next_id}")
