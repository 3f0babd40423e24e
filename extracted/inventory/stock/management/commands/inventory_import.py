"""`manage.py inventory_import DUMP.json`: load product ids and stock levels from the monolith's dumpdata."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from extracted.inventory.stock.bootstrap import inventory_load_dump
from servicekit.errors import DomainError


class Command(BaseCommand):
    help = "Load `manage.py dumpdata catalog.product inventory.stockitem` output from the monolith (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("dump", type=Path)

    def handle(self, *args, dump: Path, **options):
        try:
            records = json.loads(dump.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {dump}: {exc}") from exc
        try:
            result = inventory_load_dump(records=records)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"loaded {result.products} product(s), {result.stock_items} stock row(s)")
