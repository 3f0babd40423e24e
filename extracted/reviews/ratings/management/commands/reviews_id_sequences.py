"""`manage.py reviews_id_sequences [--headroom N]`: review ids above every id synced from the monolith."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from extracted.reviews.ratings.bootstrap import review_id_sequence_advance


class Command(BaseCommand):
    help = "Run before this service owns review writes: new reviews get ids above max(id) + headroom."

    def add_arguments(self, parser):
        parser.add_argument("--headroom", type=int, default=0, help="ids left free above the current maximum")

    def handle(self, *args, headroom: int, **options):
        self.stdout.write(f"reviews_service_review: next id {review_id_sequence_advance(headroom=headroom)}")
