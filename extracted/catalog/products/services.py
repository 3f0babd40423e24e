"""Catalog writes.

Two write paths, never mixed:
- ``*_apply_synced``/``*_discard_synced``: the follower path, used by the sync handlers and the loader.
  They upsert the owner's state with the owner's ids and timestamps and emit nothing (no echo).
- ``category_*``/``product_*`` create/update/delete: the owner path, used by the API once this service
  owns the aggregate (``ownership_require_owner`` refuses with 409 ``not_owner`` before that). Each write
  is one transaction holding the row change and its outbox event (``event_publish``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import slugify

from extracted import events
from servicekit.errors import Conflict, InvalidInput
from strangler_sync.ownership import ownership_require_owner
from strangler_sync.services import event_publish
from strangler_sync.snapshots import aggregate_payload

from .conf import catalog_setting
from .models import Category, Product

_CURRENCY = re.compile(r"^[A-Z]{3}$")
# What _clean_slug accepts (slugify(value) == value), narrowed to what a pattern states simply; serializers publish it
SLUG_PATTERN = r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$"
SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # the product serializers publish it
_SKU = re.compile(SKU_PATTERN)
_PRICE_MAX = Decimal("9999999999.99")  # max_digits=12, decimal_places=2
_url_validator = URLValidator(schemes=["http", "https"])

CATEGORY_FIELDS = ("name", "slug", "parent", "description")
PRODUCT_FIELDS = ("sku", "slug", "name", "description", "price", "currency", "is_active", "images", "category")


# -- validation (copied from the monolith: same rules, same messages) ------------------------------------------------


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"Invalid {field}: {message}", details={field: [message]})


def _clean_name(value: Any, *, field: str = "name", max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(field, "This field may not be blank.")
    value = value.strip()
    if len(value) > max_length:
        raise _invalid(field, f"Ensure this field has no more than {max_length} characters.")
    return value


def _clean_slug(value: Any, *, max_length: int) -> str:
    if not isinstance(value, str) or not value or slugify(value) != value or len(value) > max_length:
        raise _invalid("slug", "Enter a valid slug: lowercase letters, numbers, hyphens or underscores.")
    return value


def _clean_price(value: Any) -> Decimal:
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise _invalid("price", "A valid number is required.") from None
    if not price.is_finite() or price < 0 or price > _PRICE_MAX:
        raise _invalid("price", "Must be between 0 and 9999999999.99.")
    if price != price.quantize(Decimal("0.01")):
        raise _invalid("price", "Ensure that there are no more than 2 decimal places.")
    return price.quantize(Decimal("0.01"))


def _clean_currency(value: Any) -> str:
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise _invalid("currency", "Use a three-letter ISO 4217 code in capitals, e.g. USD.")
    return value


def _clean_images(value: Any) -> list[str]:
    if not isinstance(value, list | tuple):
        raise _invalid("images", "Expected a list of URLs.")
    images = []
    for url in value:
        if not isinstance(url, str):
            raise _invalid("images", "Expected a list of URLs.")
        if not url.startswith("/"):  # site-relative paths (static placeholders) are allowed as-is
            try:
                _url_validator(url)
            except DjangoValidationError:
                raise _invalid("images", f"{url!r} is not an http(s) URL or a site path.") from None
        images.append(url)
    return images


def _unique_slug(model, base: str, *, max_length: int, exclude_id: int | None = None) -> str:
    """base, or base-2, base-3... : the first slug no other row uses (for slugs derived from names)."""
    base = (slugify(base) or "item")[: max_length - 8]
    candidate, n = base, 1
    others = model.objects.exclude(id=exclude_id) if exclude_id else model.objects.all()
    while others.filter(slug=candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _timestamp(value: Any, *, fallback: datetime) -> datetime:
    """An owner's timestamp from a payload (ISO 8601 string or datetime), else the fallback."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        parsed = parse_datetime(value)
        if parsed is None:
            raise InvalidInput(f"Invalid timestamp {value!r}.", details={"timestamp": [value]})
        return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)
    return fallback


# -- follower path: apply the owner's state ------------------------------------------------------------------------


def category_apply_synced(*, category_id: int, data: dict[str, Any], occurred_at: datetime) -> Category:
    """Make the category with this id equal to the owner's state in data (insert or update)."""
    with transaction.atomic():
        existing = Category.objects.select_for_update().filter(id=category_id).first()
        category = existing or Category(id=category_id)
        category.name = data["name"]
        category.slug = data["slug"]
        category.parent_id = data.get("parent_id")
        category.description = data.get("description") or ""
        category.created_at = _timestamp(
            data.get("created_at"), fallback=existing.created_at if existing else occurred_at
        )
        category.updated_at = _timestamp(data.get("updated_at"), fallback=occurred_at)
        category.save(force_insert=existing is None)
    return category


def category_discard_synced(*, category_id: int) -> None:
    """Delete the category if present (products fall back to no category, as on the owner)."""
    with transaction.atomic():
        Category.objects.filter(id=category_id).delete()


def product_apply_synced(*, product_id: int, data: dict[str, Any], occurred_at: datetime) -> Product:
    """Make the product with this id equal to the owner's state in data (insert or update)."""
    with transaction.atomic():
        existing = Product.objects.select_for_update().filter(id=product_id).first()
        product = existing or Product(id=product_id)
        product.sku = data["sku"]
        product.slug = data["slug"]
        product.name = data["name"]
        product.description = data.get("description") or ""
        product.price = Decimal(str(data["price"]))
        product.currency = data["currency"]
        product.is_active = data["is_active"]
        product.images = list(data.get("images") or [])
        product.category_id = data.get("category_id")
        product.created_at = _timestamp(
            data.get("created_at"), fallback=existing.created_at if existing else occurred_at
        )
        product.updated_at = _timestamp(data.get("updated_at"), fallback=occurred_at)
        product.save(force_insert=existing is None)
    return product


def product_apply_synced_many(*, items: list[tuple[int, dict[str, Any], datetime]]) -> int:
    """product_apply_synced for many (id, data, occurred_at) with one upsert statement (distinct ids).

    Every data must carry ``created_at`` (the per-row path keeps an existing row's created_at otherwise).
    PostgreSQL: the rows go as one JSON parameter (``jsonb_to_recordset``) with the values the ORM path
    would write, normalised here the same way; no model instances and no per-value quoting.
    """
    if connection.vendor == "postgresql":
        rows = [{
            "id": product_id, "sku": data["sku"], "slug": data["slug"], "name": data["name"],
            "description": data.get("description") or "", "price": str(Decimal(str(data["price"]))),
            "currency": data["currency"], "is_active": data["is_active"], "images": list(data.get("images") or []),
            "category_id": data.get("category_id"),
            "created_at": _timestamp(data["created_at"], fallback=occurred_at).isoformat(),
            "updated_at": _timestamp(data.get("updated_at"), fallback=occurred_at).isoformat(),
        } for product_id, data, occurred_at in items]
        if rows:
            _products_upsert_pg(rows)
        return len(rows)
    products = []
    for product_id, data, occurred_at in items:
        updated_at = _timestamp(data.get("updated_at"), fallback=occurred_at)
        products.append(Product(
            id=product_id, sku=data["sku"], slug=data["slug"], name=data["name"],
            description=data.get("description") or "", price=Decimal(str(data["price"])), currency=data["currency"],
            is_active=data["is_active"], images=list(data.get("images") or []), category_id=data.get("category_id"),
            created_at=_timestamp(data["created_at"], fallback=occurred_at), updated_at=updated_at,
        ))
    Product.objects.bulk_create(products, update_conflicts=True, unique_fields=["id"], update_fields=_SYNCED_FIELDS)
    return len(products)


_PG_PRODUCT_COLUMNS = {
    "id": "bigint", "sku": "text", "slug": "text", "name": "text", "description": "text", "price": "numeric",
    "currency": "text", "is_active": "boolean", "images": "jsonb", "category_id": "bigint",
    "created_at": "timestamptz", "updated_at": "timestamptz",
}


def _products_upsert_pg(rows: list[dict[str, Any]]) -> None:
    table = connection.ops.quote_name(Product._meta.db_table)
    columns = ", ".join(_PG_PRODUCT_COLUMNS)
    definition = ", ".join(f"{name} {kind}" for name, kind in _PG_PRODUCT_COLUMNS.items())
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in _PG_PRODUCT_COLUMNS if name != "id")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM jsonb_to_recordset(%s::jsonb) AS r({definition}) "
            f"ON CONFLICT (id) DO UPDATE SET {updates}",
            [json.dumps(rows)],
        )


_SYNCED_FIELDS = ["sku", "slug", "name", "description", "price", "currency", "is_active", "images", "category",
                  "created_at", "updated_at"]


def product_discard_synced(*, product_id: int) -> None:
    """Delete the product if present (a redelivered delete is a no-op)."""
    with transaction.atomic():
        Product.objects.filter(id=product_id).delete()


# -- owner path: writes accepted once this service owns the aggregate ----------------------------------------------


def _publish(*, event_type: str, aggregate_type: str, instance: Category | Product) -> None:
    event_publish(
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=instance.id,
        payload=aggregate_payload(aggregate_type=aggregate_type, instance=instance),
    )


def _publish_deleted(*, aggregate_type: str, aggregate_id: int) -> None:
    event_type = events.CATEGORY_DELETED if aggregate_type == "category" else events.PRODUCT_DELETED
    event_publish(
        event_type=event_type, aggregate_type=aggregate_type, aggregate_id=aggregate_id, payload={"id": aggregate_id}
    )


def _check_category_parent(*, category: Category | None, parent: Category | None) -> None:
    if parent is None or category is None or category.pk is None:
        return
    node, seen = parent, set()
    while node is not None and node.pk not in seen:  # walk up: the new parent must not be below the category
        if node.pk == category.pk:
            raise _invalid("parent", "A category cannot be its own ancestor.")
        seen.add(node.pk)
        node = node.parent


def category_create(
    *, name: str, slug: str | None = None, parent: Category | None = None, description: str = ""
) -> Category:
    ownership_require_owner(aggregate_type="category")
    name = _clean_name(name, max_length=120)
    if slug:
        slug = _clean_slug(slug, max_length=140)
        if Category.objects.filter(slug=slug).exists():
            raise Conflict(f"A category with slug {slug!r} already exists.", details={"slug": [slug]})
    else:
        slug = _unique_slug(Category, name, max_length=140)
    now = timezone.now()
    category = Category(
        name=name, slug=slug, parent=parent, description=description or "", created_at=now, updated_at=now
    )
    try:
        with transaction.atomic():
            category.save()
            _publish(event_type=events.CATEGORY_CREATED, aggregate_type="category", instance=category)
    except IntegrityError as exc:  # a concurrent create took the slug between the check and the insert
        raise Conflict(f"A category with slug {slug!r} already exists.", details={"slug": [slug]}) from exc
    return category


def category_update(*, category: Category, data: dict[str, Any]) -> Category:
    ownership_require_owner(aggregate_type="category")
    unknown = set(data) - set(CATEGORY_FIELDS)
    if unknown:
        raise InvalidInput("Unknown fields.", details={f: ["Not an updatable field."] for f in sorted(unknown)})
    changes: dict[str, Any] = {}
    if "name" in data:
        changes["name"] = _clean_name(data["name"], max_length=120)
    if "slug" in data:
        changes["slug"] = _clean_slug(data["slug"], max_length=140)
        if Category.objects.exclude(id=category.id).filter(slug=changes["slug"]).exists():
            slug = changes["slug"]
            raise Conflict(f"A category with slug {slug!r} already exists.", details={"slug": [slug]})
    if "description" in data:
        changes["description"] = data["description"] or ""
    if "parent" in data:
        _check_category_parent(category=category, parent=data["parent"])
        changes["parent"] = data["parent"]
    try:
        with transaction.atomic():
            category = Category.objects.select_for_update().get(id=category.id)
            for field, value in changes.items():
                setattr(category, field, value)
            category.updated_at = timezone.now()
            category.save()
            _publish(event_type=events.CATEGORY_UPDATED, aggregate_type="category", instance=category)
    except IntegrityError as exc:
        raise Conflict("The category conflicts with an existing one.", details={"slug": [category.slug]}) from exc
    return category


def category_delete(*, category: Category) -> Category:
    """Delete a leaf category; its products keep existing without a category (followers do the same)."""
    ownership_require_owner(aggregate_type="category")
    category_id = category.id
    try:
        with transaction.atomic():
            list(Category.objects.select_for_update().filter(id=category_id).values_list("id"))  # as for updates
            category.delete()
            _publish_deleted(aggregate_type="category", aggregate_id=category_id)
    except ProtectedError as exc:
        raise Conflict("The category has subcategories; move or delete them first.") from exc
    category.id = category_id
    return category


def _clean_product_fields(data: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    if "sku" in data:
        if not isinstance(data["sku"], str) or not _SKU.match(data["sku"]):
            raise _invalid("sku", "Use 1-64 letters, digits, '.', '_' or '-'.")
        cleaned["sku"] = data["sku"]
    if "slug" in data:
        cleaned["slug"] = _clean_slug(data["slug"], max_length=200)
    if "name" in data:
        cleaned["name"] = _clean_name(data["name"], max_length=200)
    if "description" in data:
        if not isinstance(data["description"], str):
            raise _invalid("description", "Not a valid string.")
        cleaned["description"] = data["description"]
    if "price" in data:
        cleaned["price"] = _clean_price(data["price"])
    if "currency" in data:
        cleaned["currency"] = _clean_currency(data["currency"])
    if "is_active" in data:
        if not isinstance(data["is_active"], bool):
            raise _invalid("is_active", "Must be a boolean.")
        cleaned["is_active"] = data["is_active"]
    if "images" in data:
        cleaned["images"] = _clean_images(data["images"])
    if "category" in data:
        if data["category"] is not None and not isinstance(data["category"], Category):
            raise _invalid("category", "Must be a category or null.")
        cleaned["category"] = data["category"]
    return cleaned


def _check_product_unique(*, sku: str | None, slug: str | None, exclude_id: int | None) -> None:
    others = Product.objects.exclude(id=exclude_id) if exclude_id else Product.objects.all()
    if sku is not None and others.filter(sku=sku).exists():
        raise Conflict(f"A product with SKU {sku!r} already exists.", details={"sku": [sku]})
    if slug is not None and others.filter(slug=slug).exists():
        raise Conflict(f"A product with slug {slug!r} already exists.", details={"slug": [slug]})


def product_create(
    *,
    sku: str,
    name: str,
    price: Decimal | str | int,
    slug: str | None = None,
    description: str = "",
    currency: str | None = None,
    is_active: bool = True,
    images: list[str] | None = None,
    category: Category | None = None,
) -> Product:
    ownership_require_owner(aggregate_type="product")
    data = {
        "sku": sku,
        "name": name,
        "price": price,
        "description": description,
        "currency": currency or catalog_setting("DEFAULT_CURRENCY"),
        "is_active": is_active,
        "images": images or [],
        "category": category,
    }
    if slug:
        data["slug"] = slug
    fields = _clean_product_fields(data)
    _check_product_unique(sku=fields["sku"], slug=fields.get("slug"), exclude_id=None)
    if "slug" not in fields:
        fields["slug"] = _unique_slug(Product, fields["name"], max_length=200)
    now = timezone.now()
    product = Product(**fields, created_at=now, updated_at=now)
    try:
        with transaction.atomic():
            product.save()
            _publish(event_type=events.PRODUCT_CREATED, aggregate_type="product", instance=product)
    except IntegrityError as exc:  # lost a race on sku/slug after the checks above
        raise Conflict("A product with this SKU or slug already exists.", details={"sku": [product.sku]}) from exc
    return product


def product_update(*, product: Product, data: dict[str, Any]) -> Product:
    """Change the given fields (any of PRODUCT_FIELDS) of a product."""
    ownership_require_owner(aggregate_type="product")
    unknown = set(data) - set(PRODUCT_FIELDS)
    if unknown:
        raise InvalidInput("Unknown fields.", details={f: ["Not an updatable field."] for f in sorted(unknown)})
    changes = _clean_product_fields(data)
    _check_product_unique(sku=changes.get("sku"), slug=changes.get("slug"), exclude_id=product.id)
    try:
        with transaction.atomic():
            product = Product.objects.select_for_update().get(id=product.id)
            for field, value in changes.items():
                setattr(product, field, value)
            product.updated_at = timezone.now()
            product.save()
            _publish(event_type=events.PRODUCT_UPDATED, aggregate_type="product", instance=product)
    except IntegrityError as exc:
        raise Conflict("A product with this SKU or slug already exists.", details={"sku": [product.sku]}) from exc
    return product


def product_delete(*, product: Product) -> Product:
    """Delete a product (orders live in the monolith: deactivating via PATCH is_active=false keeps them valid)."""
    ownership_require_owner(aggregate_type="product")
    product_id = product.id
    with transaction.atomic():
        list(Product.objects.select_for_update().filter(id=product_id).values_list("id"))  # serialise with updates
        product.delete()
        _publish_deleted(aggregate_type="product", aggregate_id=product_id)
    product.id = product_id  # delete() clears the pk; callers still want to know which product went
    return product
