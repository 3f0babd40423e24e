"""Seeding the service from the monolith: a loader for the monolith's dumpdata, and the id-sequence bump.

The loader is the offline path (tests, a first copy of a small catalog); the online path is
``sync_backfill`` on the monolith streaming snapshot events to this service's consumer.

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

from .models import Category, Product

MONOLITH_CATEGORY = "catalog.category"
MONOLITH_PRODUCT = "catalog.product"
_PRODUCT_FIELDS = ["sku", "slug", "name", "description", "price", "currency", "is_active", "images",
                   "category_id", "created_at", "updated_at"]  # fmt: skip
_CATEGORY_FIELDS = ["name", "slug", "parent_id", "description", "created_at", "updated_at"]


@dataclass(frozen=True)
class LoadResult:
    categories: int
    products: int


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
    for record in records:
        model = record.get("model")
        if model == MONOLITH_CATEGORY:
            categories.append(_category(record))
        elif model == MONOLITH_PRODUCT:
            products.append(_product(record))
    try:
        with transaction.atomic():
            for model, rows, fields in (
                (Category, categories, _CATEGORY_FIELDS), (Product, products, _PRODUCT_FIELDS)
            ):
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
    return LoadResult(categories=len(categories), products=len(products))


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
