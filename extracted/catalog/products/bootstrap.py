"""Seeding the service from the monolith: a loader for the monolith's dumpdata, and the id-sequence bump.

The loader is the offline path (tests, a first copy of a small catalog); the online path is
``sync_backfill`` on the monolith streaming snapshot events to this service's consumer.

The loader keeps the consumer's version guard (``strangler_sync.consumer.first_copy_claim``): a row an
event has already brought here is not overwritten by the dump, which may be older (the consumer runs
while the dump is taken and loaded). Dump the versions first so the guard knows how old each row is:
``dumpdata strangler_sync.aggregateversion catalog.category catalog.product`` (versions read before the
rows: a row is at least as new as its version); without them any applied event wins over the dump.

Ids: followers insert rows with the owner's ids, which PostgreSQL identity sequences do not see. Before
this service allocates ids itself (ownership flipped to "catalog", the monolith's outbox drained), run
``manage.py catalog_id_sequences`` so new ids start above every id the monolith handed out
(``--headroom`` leaves room for writes still in flight). SQLite's AUTOINCREMENT already tracks the
largest explicit id; the command still applies the headroom there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from servicekit.errors import Conflict, InvalidInput
from strangler_sync.consumer import first_copy_claim

from .models import Category, Product

MONOLITH_CATEGORY = "catalog.category"
MONOLITH_PRODUCT = "catalog.product"
MONOLITH_VERSION = "strangler_sync.aggregateversion"
_PRODUCT_FIELDS = ["sku", "slug", "name", "description", "price", "currency", "is_active", "images",
                   "category_id", "created_at", "updated_at"]  # fmt: skip
_CATEGORY_FIELDS = ["name", "slug", "parent_id", "description", "created_at", "updated_at"]


@dataclass(frozen=True)
class LoadResult:
    categories: int  # rows written
    products: int
    kept_newer: int = 0  # rows of the dump not written: events had brought them to its version or past it


def _when(value: Any, *, record: dict):
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise InvalidInput(f"Bad timestamp {value!r} in {record.get('model')} {record.get('pk')}.")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, timezone.get_default_timezone())


def _category(record: dict) -> Category:
    fields = record["fields"]
    return Category(
        id=record["pk"], name=fields["name"], slug=fields["slug"], parent_id=fields.get("parent"),
        description=fields.get("description") or "", created_at=_when(fields["created_at"], record=record),
        updated_at=_when(fields["updated_at"], record=record),
    )


def _product(record: dict) -> Product:
    fields = record["fields"]
    return Product(
        id=record["pk"], sku=fields["sku"], slug=fields["slug"], name=fields["name"],
        description=fields.get("description") or "", price=Decimal(str(fields["price"])),
        currency=fields["currency"], is_active=fields["is_active"], images=list(fields.get("images") or []),
        category_id=fields.get("category"), created_at=_when(fields["created_at"], record=record),
        updated_at=_when(fields["updated_at"], record=record),
    )


def catalog_load_dump(*, records: Iterable[dict], batch_size: int = 1000) -> LoadResult:
    """Upsert the monolith's catalog rows (``manage.py dumpdata catalog.category catalog.product``) by id.

    Other models in the dump are ignored; loading the same dump twice changes nothing.
    """
    categories: list[Category] = []
    products: list[Product] = []
    versions: dict[str, dict[str, int]] = {"category": {}, "product": {}}
    for record in records:
        model = record.get("model")
        if model == MONOLITH_CATEGORY:
            categories.append(_category(record))
        elif model == MONOLITH_PRODUCT:
            products.append(_product(record))
        elif model == MONOLITH_VERSION:
            fields = record.get("fields") or {}
            if fields.get("aggregate_type") in versions and isinstance(fields.get("version"), int):
                versions[fields["aggregate_type"]][str(fields.get("aggregate_id"))] = fields["version"]
    written = {"category": 0, "product": 0}
    try:
        with transaction.atomic():
            for model, rows, fields, aggregate_type in (
                (Category, categories, _CATEGORY_FIELDS, "category"), (Product, products, _PRODUCT_FIELDS, "product")
            ):
                allowed = first_copy_claim(aggregate_type=aggregate_type, copied={
                    str(row.id): versions[aggregate_type].get(str(row.id)) for row in rows})
                rows = [row for row in rows if str(row.id) in allowed]
                written[aggregate_type] = len(rows)
                for start in range(0, len(rows), batch_size):
                    model.objects.bulk_create(
                        rows[start : start + batch_size], update_conflicts=True, unique_fields=["id"],
                        update_fields=fields,
                    )
    except IntegrityError as exc:  # a slug/SKU held by another id here: this database diverged from the dump
        raise Conflict(f"The dump conflicts with rows already here (nothing was loaded): {exc}") from exc
    # Fresh statistics, so the first queries after a big load get good plans (SQLite never analyses by itself).
    with connection.cursor() as cursor:
        for model in (Category, Product):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
    return LoadResult(categories=written["category"], products=written["product"],
                      kept_newer=len(categories) + len(products) - sum(written.values()))


def id_sequences_advance(*, headroom: int = 0) -> dict[str, int]:
    """Make the next id of each table max(id) + 1 + headroom (never lower than it already is).

    Returns the next id per table.
    """
    if headroom < 0:
        raise InvalidInput("headroom must not be negative.", details={"headroom": [str(headroom)]})
    next_ids = {}
    with transaction.atomic():
        for model in (Category, Product):
            table = model._meta.db_table
            # Lock out concurrent inserts while the sequence moves (ids taken meanwhile would be skipped over).
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(f"LOCK TABLE {connection.ops.quote_name(table)} IN EXCLUSIVE MODE")
            wanted = (model.objects.aggregate(top=Max("id"))["top"] or 0) + 1 + headroom
            next_ids[table] = _sequence_raise(table=table, next_id=wanted)
    return next_ids


def _sequence_raise(*, table: str, next_id: int) -> int:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            (sequence,) = cursor.fetchone()
            cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
            last_value, is_called = cursor.fetchone()
            current_next = last_value + 1 if is_called else last_value
            next_id = max(next_id, current_next)
            cursor.execute("SELECT setval(%s, %s, false)", [sequence, next_id])
            return next_id
        if connection.vendor == "sqlite":
            # sqlite_sequence holds the largest id handed out; the next one is seq + 1.
            cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
            row = cursor.fetchone()
            next_id = max(next_id, (row[0] + 1) if row else 1)
            if row:
                cursor.execute("UPDATE sqlite_sequence SET seq = %s WHERE name = %s", [next_id - 1, table])
            else:
                cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", [table, next_id - 1])
            return next_id
    raise InvalidInput(f"Unsupported database vendor {connection.vendor!r}.")
