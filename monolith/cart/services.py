"""Cart writes: add, update, remove, merge (on login), reprice (at checkout) and clear."""

from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from monolith.cart.models import Cart, CartLine
from monolith.catalog.models import Product
from servicekit.errors import Conflict, InvalidInput, NotFound
from servicekit.ids import MAX_ID

MAX_LINE_QUANTITY = 99


class ProductUnavailable(Conflict):  # the product's state refuses a well-formed request
    code = "product_unavailable"


def _whole_number(value) -> int | None:
    """An int as it is; a digit string as HTML forms send it ("12", "-3") as its int; anything else (True, 2.5,
    "x", "١٢") None. Digit strings longer than any id are None too: int() refuses past 4,300 digits (a 500)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        digits = text.removeprefix("-")
        if digits.isascii() and digits.isdigit() and len(digits) <= len(str(MAX_ID)):
            return int(text)
    return None


def _clean_quantity(value) -> int:
    """An integer 1..99; numeric strings from HTML forms are accepted, "2.5", True or "x" are not."""
    value = _whole_number(value)
    if value is None or not 1 <= value <= MAX_LINE_QUANTITY:
        message = f"Quantity must be a whole number from 1 to {MAX_LINE_QUANTITY}."
        raise InvalidInput(message, details={"quantity": [message]})
    return value


def _sellable_product(product_id) -> Product:
    product_id = _whole_number(product_id)
    if product_id is None or not 1 <= product_id <= MAX_ID:
        raise InvalidInput("product must be a product id.", details={"product": ["A valid integer is required."]})
    product = Product.objects.filter(id=product_id).first()
    if product is None:
        raise NotFound(f"Unknown product {product_id}.", details={"product": product_id})
    if not product.is_active:
        raise ProductUnavailable(f"{product.name} is no longer for sale.", details={"product": product_id})
    return product


def cart_get_or_create_for_request(*, request) -> Cart:
    """The request's cart, created on first use; anonymous visitors get a session (and its cookie) for it."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return cart_get_or_create_for_user(user=user)
    if not request.session.session_key:
        request.session.save()
        request.session.modified = True  # so SessionMiddleware sends the cookie
    cart, _ = Cart.objects.get_or_create(session_key=request.session.session_key, user=None)
    return cart


def cart_get_or_create_for_user(*, user) -> Cart:
    try:
        with transaction.atomic():
            cart, _ = Cart.objects.get_or_create(user=user)
    except IntegrityError:  # a concurrent request created it first
        cart = Cart.objects.get(user=user)
    return cart


def cart_add_product(*, cart: Cart, product_id: int, quantity: int) -> CartLine:
    """Add to the line (the price snapshot stays the one from the first add; checkout re-checks it)."""
    quantity = _clean_quantity(quantity)
    product = _sellable_product(product_id)
    with transaction.atomic():
        # Touching the cart row locks it: two adds to one cart (a double click) run one after the other.
        Cart.objects.filter(pk=cart.pk).update(updated_at=timezone.now())
        line = CartLine.objects.filter(cart=cart, product=product).first()
        if line is None:
            return CartLine.objects.create(cart=cart, product=product, quantity=quantity, unit_price=product.price)
        total = line.quantity + quantity
        if total > MAX_LINE_QUANTITY:
            message = f"At most {MAX_LINE_QUANTITY} of one product per order ({line.quantity} already in cart)."
            # the request is well-formed; it conflicts with what the cart already holds
            raise Conflict(message, details={"quantity": [message]})
        line.quantity = total
        line.save(update_fields=["quantity"])
    return line


def cart_update_line(*, cart: Cart, product_id: int, quantity: int) -> CartLine:
    quantity = _clean_quantity(quantity)
    with transaction.atomic():
        line = CartLine.objects.select_for_update().filter(cart=cart, product_id=product_id).first()
        if line is None:
            raise NotFound("That product is not in the cart.", details={"product": product_id})
        line.quantity = quantity
        line.save(update_fields=["quantity"])
    return line


def cart_remove_line(*, cart: Cart, product_id: int) -> None:
    deleted, _ = CartLine.objects.filter(cart=cart, product_id=product_id).delete()
    if not deleted:
        raise NotFound("That product is not in the cart.", details={"product": product_id})


def cart_merge(*, source: Cart | None, target: Cart) -> Cart:
    """Move the anonymous cart's lines into the user's cart (quantities summed, capped), then drop it."""
    if source is None or source.pk == target.pk:
        return target
    with transaction.atomic():
        existing = {line.product_id: line for line in CartLine.objects.select_for_update().filter(cart=target)}
        for line in CartLine.objects.filter(cart=source).order_by("id"):
            kept = existing.get(line.product_id)
            if kept is None:
                CartLine.objects.create(
                    cart=target, product_id=line.product_id, quantity=line.quantity, unit_price=line.unit_price
                )
            else:
                kept.quantity = min(kept.quantity + line.quantity, MAX_LINE_QUANTITY)
                kept.save(update_fields=["quantity"])
        source.delete()
    return target


def cart_reprice(*, cart: Cart, prices: dict[int, Decimal]) -> None:
    """Take the current prices into the cart's lines (after checkout found them changed)."""
    with transaction.atomic():
        for line in CartLine.objects.select_for_update().filter(cart=cart, product_id__in=list(prices)):
            line.unit_price = prices[line.product_id]
            line.save(update_fields=["unit_price"])


def cart_clear(*, cart: Cart) -> None:
    CartLine.objects.filter(cart=cart).delete()
