"""Catalog writes: categories and products. Every write is one transaction and returns the model it wrote.

Categories publish their events explicitly (``event_publish``); products are captured by database triggers
(``capture="automatic"`` in ``monolith.events``), so product writes only pass the request's correlation id and
trace context to the trigger (``capture_context``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils.text import slugify

from monolith import events
from monolith.catalog.conf import catalog_settings
from monolith.catalog.models import Category, Product
from servicekit.errors import Conflict, InvalidInput
from strangler_sync.capture import capture_context
from strangler_sync.ownership import ownership_fence, ownership_require_owner
from strangler_sync.services import event_publish
from strangler_sync.snapshots import aggregate_payload

_CURRENCY = re.compile(r"^[A-Z]{3}$")
# What _clean_slug accepts (slugify(value) == value), narrowed to what a pattern states simply; serializers publish it
SLUG_PATTERN = r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$"
SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # the product serializers publish it
_SKU = re.compile(SKU_PATTERN)
_PRICE_MAX = Decimal("9999999999.99")  # max_digits=12, decimal_places=2
_url_validator = URLValidator(schemes=["http", "https"])

CATEGORY_FIELDS = ("name", "slug", "parent", "description")
PRODUCT_FIELDS = ("sku", "slug", "name", "description", "price", "currency", "is_active", "images", "category")


def _emit(*, event_type: str, aggregate_type: str, instance: Category) -> None:
    """Record the row's new full state in the outbox, inside the write's transaction (strangler_sync)."""
    event_publish(event_type=event_type, aggregate_type=aggregate_type, aggregate_id=instance.pk,
                  payload=aggregate_payload(aggregate_type=aggregate_type, instance=instance))


def _emit_deleted(*, aggregate_type: str, instance_id: int) -> None:
    event_publish(event_type=f"{aggregate_type}.deleted", aggregate_type=aggregate_type, aggregate_id=instance_id,
                  payload={"id": instance_id})


# -- validation helpers (raise InvalidInput with per-field details) -------------------------------------------------


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


# -- categories ------------------------------------------------------------------------------------------------------


def category_parent_check(*, category: Category | None, parent: Category | None) -> None:
    """InvalidInput when parent would put the category below itself (also used by the admin form)."""
    if parent is None or category is None or category.pk is None:
        return
    node = parent
    while node is not None:  # walk up: the new parent must not be the category itself or one of its descendants
        if node.pk == category.pk:
            raise _invalid("parent", "A category cannot be its own ancestor.")
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
    category = Category(name=name, slug=slug, parent=parent, description=description or "")
    try:
        with transaction.atomic():
            category.save()
            _emit(event_type=events.CATEGORY_CREATED, aggregate_type="category", instance=category)
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
        category_parent_check(category=category, parent=data["parent"])
        changes["parent"] = data["parent"]
    try:
        with transaction.atomic():
            category = Category.objects.select_for_update().get(id=category.id)
            for field, value in changes.items():
                setattr(category, field, value)
            category.save()
            _emit(event_type=events.CATEGORY_UPDATED, aggregate_type="category", instance=category)
    except IntegrityError as exc:
        raise Conflict("The category conflicts with an existing one.", details={"slug": [category.slug]}) from exc
    return category


def category_delete(*, category: Category) -> Category:
    """Delete a leaf category; its products keep existing without a category."""
    ownership_require_owner(aggregate_type="category")
    category_id = category.id
    try:
        with transaction.atomic():
            category.delete()
            _emit_deleted(aggregate_type="category", instance_id=category_id)
    except ProtectedError as exc:
        raise Conflict("The category has subcategories; move or delete them first.") from exc
    return category


# -- products --------------------------------------------------------------------------------------------------------


def product_fields_clean(*, data: dict[str, Any]) -> dict[str, Any]:
    """The given product fields, validated and normalised; InvalidInput with per-field details otherwise."""
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
    data = {
        "sku": sku,
        "name": name,
        "price": price,
        "description": description,
        "currency": currency or catalog_settings.DEFAULT_CURRENCY,
        "is_active": is_active,
        "images": images or [],
        "category": category,
    }
    if slug:
        data["slug"] = slug
    ownership_require_owner(aggregate_type="product")
    fields = product_fields_clean(data=data)
    _check_product_unique(sku=fields["sku"], slug=fields.get("slug"), exclude_id=None)
    if "slug" not in fields:
        fields["slug"] = _unique_slug(Product, fields["name"], max_length=200)
    product = Product(**fields)
    try:
        with transaction.atomic(), capture_context():
            ownership_fence(aggregate_type="product")  # in the transaction: no flip between check and commit
            product.save()
    except IntegrityError as exc:  # lost a race on sku/slug after the checks above
        raise Conflict("A product with this SKU or slug already exists.", details={"sku": [product.sku]}) from exc
    return product


def product_update(*, product: Product, data: dict[str, Any]) -> Product:
    """Change the given fields (any of PRODUCT_FIELDS) of a product."""
    ownership_require_owner(aggregate_type="product")
    unknown = set(data) - set(PRODUCT_FIELDS)
    if unknown:
        raise InvalidInput("Unknown fields.", details={f: ["Not an updatable field."] for f in sorted(unknown)})
    changes = product_fields_clean(data=data)
    _check_product_unique(sku=changes.get("sku"), slug=changes.get("slug"), exclude_id=product.id)
    try:
        with transaction.atomic(), capture_context():
            ownership_fence(aggregate_type="product")  # in the transaction: no flip between check and commit
            product = Product.objects.select_for_update().get(id=product.id)
            for field, value in changes.items():
                setattr(product, field, value)
            product.save()
    except IntegrityError as exc:
        raise Conflict("A product with this SKU or slug already exists.", details={"sku": [product.sku]}) from exc
    return product


def product_deactivate(*, product: Product) -> Product:
    """Hide a product from the storefront without deleting it (orders keep pointing at it)."""
    ownership_require_owner(aggregate_type="product")
    with transaction.atomic(), capture_context():
        ownership_fence(aggregate_type="product")  # in the transaction: no flip between check and commit
        product = Product.objects.select_for_update().get(id=product.id)
        if product.is_active:
            product.is_active = False
            product.save(update_fields=["is_active", "updated_at"])
    return product


def product_delete(*, product: Product) -> Product:
    """Delete a product nobody references; one with reservations or orders can only be deactivated."""
    ownership_require_owner(aggregate_type="product")
    product_id = product.id
    try:
        with transaction.atomic(), capture_context():
            ownership_fence(aggregate_type="product")  # in the transaction: no flip between check and commit
            product.delete()
    except ProtectedError as exc:
        raise Conflict("The product is referenced by orders or reservations; deactivate it instead.") from exc
    product.id = product_id  # delete() clears the pk; callers still want to know which product went
    return product
