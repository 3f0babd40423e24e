"""Cart reads: the request's cart (never created here), its lines and totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Sum

from monolith.cart.models import Cart, CartLine


@dataclass(frozen=True)
class CartTotals:
    item_count: int
    subtotal: Decimal
    currency: str
    lines: list[CartLine] = field(default_factory=list)


def cart_get_for_request(*, request) -> Cart | None:
    """The logged-in user's cart, or the anonymous session's; None when there is none yet."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return Cart.objects.filter(user=user).first()
    session_key = request.session.session_key
    if not session_key:
        return None
    return Cart.objects.filter(session_key=session_key, user__isnull=True).first()


def cart_lines(*, cart: Cart | None) -> list[CartLine]:
    if cart is None or cart.pk is None:
        return []
    return list(cart.lines.select_related("product").order_by("id"))


def cart_totals(*, cart: Cart | None) -> CartTotals:
    lines = cart_lines(cart=cart)
    subtotal = sum((line.line_total for line in lines), Decimal("0.00"))
    currency = lines[0].product.currency if lines else "USD"
    return CartTotals(
        item_count=sum(line.quantity for line in lines), subtotal=subtotal, currency=currency, lines=lines
    )


def cart_item_count(*, cart: Cart | None) -> int:
    if cart is None:
        return 0
    return cart.lines.aggregate(n=Sum("quantity"))["n"] or 0
