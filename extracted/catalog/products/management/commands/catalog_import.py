"""`manage.py catalog_import DUMP.json`: load the monolith's `dumpdata catalog.category catalog.product` output.

Rows an event newer than the dump already brought here are kept (the consumer's version guard); dump
``strangler_sync.aggregateversion`` first to give the guard each row's version (see products.bootstrap).
"""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from extracted.catalog.products.bootstrap import catalog_load_dump, id_sequences_advance
from servicekit.errors import DomainError


class Command(BaseCommand):
    help = "Upsert categories and products from the monolith's dumpdata JSON (a file, or - for stdin), by id."

    def add_arguments(self, parser):
        parser.add_argument("dump", help="path to the dumpdata JSON, or - to read stdin")
        parser.add_argument("--batch", type=int, default=1000)

    def handle(self, *args, dump: str, batch: int, **options):
        try:
            if dump == "-":
                records = json.load(sys.stdin)
            else:
                with open(dump, encoding="utf-8") as handle:
                    records = json.load(handle)
        except (OSError, json.JSONDecodeError) as exc:
            raise CommandError(f"cannot read {dump}: {exc}") from exc
        if not isinstance(records, list):
            raise CommandError(f"{dump}: expected a JSON list of dumpdata records")
        try:
            result = catalog_load_dump(records=records, batch_size=batch)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        # Loaded rows carry the monolith's ids; keep this database's id allocator above them.
        id_sequences_advance()
        kept = f"; kept {result.kept_newer} row(s) already at or past the dump's version" if result.kept_newer else ""
        self.stdout.write(f"loaded {result.categories} categories and {result.products} products{kept}")
