"""Orders writes: checkout (reserve, charge, finalise), cancel, ship and deliver.

Checkout keeps the request short and never holds a lock while the (possibly slow) payment provider works:
transaction 1 creates the order and reserves its stock, the charge runs outside any transaction, and
transaction 2 marks it paid (or cancelled, stock released, refund attempted when the outcome is unknown).

Once the inventory service owns stock, the stock steps are calls to its API instead, made outside the
transactions, each with its compensation (``monolith.orders.saga``).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone

from monolith.accounts.models import Address
from monolith.cart.models import Cart
from monolith.cart.selectors import cart_lines
from monolith.cart.services import cart_clear, cart_reprice
from monolith.inventory.errors import OutOfStock
from monolith.inventory.services import stock_confirm, stock_release, stock_reserve, stock_return
from monolith.orders import saga
from monolith.orders.errors import CartEmpty, IllegalTransition, PriceChanged, ProductUnavailable
from monolith.orders.inventory_gateway import InventoryUnavailable, inventory_confirm, inventory_return
from monolith.orders.models import Order, OrderLine, Payment
from monolith.payments.base import ChargeResult, PaymentProvider, card_number_clean
from monolith.payments.errors import PaymentDeclined, PaymentError, PaymentTimeout, PaymentUnavailable
from monolith.payments.provider import payment_provider
from servicekit.errors import Conflict, InvalidInput, NotFound

# Which status may follow which; anything else is an IllegalTransition (409).
TRANSITIONS: dict[str, set[str]] = {
    Order.Status.PLACED: {Order.Status.PAID, Order.Status.CANCELLED},
    Order.Status.PAID: {Order.Status.SHIPPED, Order.Status.CANCELLED},
    Order.Status.SHIPPED: {Order.Status.DELIVERED},
    Order.Status.DELIVERED: set(),
    Order.Status.CANCELLED: set(),
}
# A replayed checkout whose order failed on payment answers with the same error again.
_REPLAYED_FAILURES = {cls.code: cls for cls in (PaymentDeclined, PaymentTimeout, PaymentUnavailable)}
_REPLAYED_FAILURES["payment_abandoned"] = PaymentTimeout  # expired by orders_expire_stale: outcome was unknown
_REPLAYED_FAILURES[InventoryUnavailable.code] = InventoryUnavailable  # confirm failed after the charge: refunded
# What an idempotency key may be (the API schema publishes the same pattern for the header and the field).
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"


@dataclass(frozen=True)
class _CheckoutLine:
    product_id: int
    sku: str
    name: str
    unit_price: Decimal
    quantity: int
    currency: str


def _new_reference() -> str:
    return "ORD-" + secrets.token_hex(5).upper()


def _clean_idempotency_key(value) -> str:
    if not isinstance(value, str) or not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, value):
        message = "An idempotency key of 1-64 letters, digits, '.', '_', ':' or '-' is required."
        raise InvalidInput(message, details={"idempotency_key": [message]})
    return value


def _clean_expected_total(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        total = Decimal(str(value))
    except (InvalidOperation, ValueError):
        total = None
    if total is None or not total.is_finite():
        raise InvalidInput("expected_total must be a decimal amount.", details={"expected_total": [str(value)]})
    return total


def _order_replay(order: Order) -> Order:
    error_class = _REPLAYED_FAILURES.get(order.failure_code)
    if order.status == Order.Status.CANCELLED and error_class is not None:
        raise error_class(
            f"Payment for order {order.reference} failed ({order.failure_code}); it was cancelled.",
            details={"order": order.reference},
        )
    return order


def _checkout_lines(cart: Cart) -> list[_CheckoutLine]:
    """The cart as order lines: refuses an empty cart, products no longer sold and changed prices."""
    lines = cart_lines(cart=cart)
    if not lines:
        raise CartEmpty("Your cart is empty.")
    inactive = [line for line in lines if not line.product.is_active]
    if inactive:
        names = ", ".join(line.product.name for line in inactive)
        raise ProductUnavailable(
            f"No longer for sale: {names}. Remove it from your cart to check out.",
            details={"products": [line.product_id for line in inactive]},
        )
    changed = [line for line in lines if line.unit_price != line.product.price]
    if changed:
        cart_reprice(cart=cart, prices={line.product_id: line.product.price for line in changed})
        new_total = sum((line.product.price * line.quantity for line in lines), Decimal("0.00"))
        names = ", ".join(f"{line.product.name} {line.unit_price} → {line.product.price}" for line in changed)
        raise PriceChanged(
            f"Prices changed since you added them: {names}. Your cart has the new prices; please confirm again.",
            details={
                "lines": [
                    {"product": line.product_id, "old_price": f"{line.unit_price:.2f}",
                     "new_price": f"{line.product.price:.2f}"}
                    for line in changed
                ],
                "total": f"{new_total:.2f}",
            },
        )
    currencies = {line.product.currency for line in lines}
    if len(currencies) > 1:
        raise InvalidInput("One order can only be in one currency.", details={"currencies": sorted(currencies)})
    return [
        _CheckoutLine(
            product_id=line.product_id,
            sku=line.product.sku,
            name=line.product.name,
            unit_price=line.unit_price,
            quantity=line.quantity,
            currency=line.product.currency,
        )
        for line in lines
    ]


def _out_of_stock_for_people(exc: OutOfStock, lines: list[_CheckoutLine]) -> OutOfStock:
    """Inventory names product ids; the customer reads product names and how many are left."""
    names = {line.product_id: line.name for line in lines}
    parts = [
        f"{names.get(short['product'], short['product'])} (only {short['available']} left)"
        for short in exc.details.get("products", [])
    ]
    return OutOfStock(f"Not enough stock for {', '.join(parts)}. Please change your cart.", details=exc.details)


def order_place(
    *,
    user,
    cart: Cart | None,
    address: Address,
    card_number: str,
    idempotency_key: str,
    expected_total: Decimal | str | None = None,
) -> Order:
    """Check out the cart: returns the paid order, or raises (and leaves no order half-done).

    The same idempotency key returns the same order (or the same payment error), never a second order.
    """
    key = _clean_idempotency_key(idempotency_key)
    existing = Order.objects.filter(user=user, idempotency_key=key).first()
    if existing is not None:
        return _order_replay(existing)
    card = card_number_clean(card_number)
    expected = _clean_expected_total(expected_total)
    if address.pk is not None and address.user_id != user.pk:
        raise NotFound("No such address.", details={"address": address.pk})
    if cart is None:
        raise CartEmpty("Your cart is empty.")
    lines = _checkout_lines(cart)
    subtotal = sum((line.unit_price * line.quantity for line in lines), Decimal("0.00"))
    if expected is not None and expected != subtotal:
        raise PriceChanged(
            f"Your cart total is now {subtotal:.2f}, not {expected:.2f}; please confirm again.",
            details={"expected_total": f"{expected:.2f}", "total": f"{subtotal:.2f}"},
        )

    stock_lines = [(line.product_id, line.quantity) for line in lines]
    remote_stock = saga.stock_is_remote()
    try:
        with transaction.atomic():
            # The order row first: a concurrent double submission waits here on the unique key and then
            # fails, before it could touch (and wrongly fail on) the stock the first one reserved.
            order = Order.objects.create(
                reference=_new_reference(),
                user=user,
                idempotency_key=key,
                currency=lines[0].currency,
                subtotal=subtotal,
                total=subtotal,
                ship_name=address.name,
                ship_line1=address.line1,
                ship_line2=address.line2,
                ship_city=address.city,
                ship_postal_code=address.postal_code,
                ship_country=address.country,
            )
            OrderLine.objects.bulk_create(
                OrderLine(
                    order=order,
                    product_id=line.product_id,
                    sku=line.sku,
                    name=line.name,
                    unit_price=line.unit_price,
                    quantity=line.quantity,
                    line_total=line.unit_price * line.quantity,
                )
                for line in lines
            )
            if not remote_stock:
                stock_reserve(reference=order.reference, lines=stock_lines)
        if remote_stock:  # the saga's first step, outside the transaction; the order is discarded on failure
            saga.checkout_reserve_remote(order=order, lines=stock_lines)
    except IntegrityError:
        existing = Order.objects.filter(user=user, idempotency_key=key).first()
        if existing is None:
            raise
        return _order_replay(existing)
    except OutOfStock as exc:
        raise _out_of_stock_for_people(exc, lines) from None

    provider = payment_provider()
    try:
        charge = provider.charge(reference=order.reference, amount=order.total, currency=order.currency,
                                 card_number=card)
    except PaymentDeclined as exc:
        _order_fail(order=order, provider=provider, card=card, status=Payment.Status.DECLINED, error=exc)
        raise
    except PaymentTimeout as exc:
        _order_fail(order=order, provider=provider, card=card, status=Payment.Status.TIMEOUT, error=exc,
                    refund=True)
        raise
    except PaymentUnavailable as exc:
        _order_fail(order=order, provider=provider, card=card, status=Payment.Status.FAILED, error=exc)
        raise
    except Exception as exc:  # a provider bug or network error: the outcome is unknown, compensate like a timeout
        error = PaymentUnavailable(f"The payment failed: {type(exc).__name__}.")
        _order_fail(order=order, provider=provider, card=card, status=Payment.Status.FAILED, error=error,
                    refund=True)
        raise error from exc
    return _order_mark_paid(order=order, provider=provider, cart=cart, card=card, charge=charge)


def _payment_record(*, order: Order, provider: PaymentProvider, kind: str, status: str, **fields) -> Payment:
    return Payment.objects.create(
        order=order, kind=kind, status=status, provider=provider.name, amount=order.total, currency=order.currency,
        **fields,
    )


def _refund(*, order: Order, provider: PaymentProvider) -> Payment:
    """Ask the provider for a refund (outside any transaction) and record what it said."""
    try:
        refund = provider.refund(reference=order.reference, amount=order.total, currency=order.currency)
    except PaymentError as exc:
        return _payment_record(order=order, provider=provider, kind=Payment.Kind.REFUND,
                               status=Payment.Status.FAILED, error_code=exc.code, message=exc.message[:255])
    return _payment_record(order=order, provider=provider, kind=Payment.Kind.REFUND,
                           status=Payment.Status.SUCCEEDED, provider_reference=refund.refund_id)


def _order_fail(*, order: Order, provider: PaymentProvider, card: str, status: str, error: PaymentError,
                refund: bool = False) -> None:
    """Payment did not go through: cancel the order, release its stock, refund when it may have charged."""
    error.details = {**error.details, "order": order.reference}
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        _payment_record(order=order, provider=provider, kind=Payment.Kind.CHARGE, status=status,
                        card_last4=card[-4:], error_code=error.code, message=error.message[:255])
        local_stock = saga.reservation_is_local(reference=order.reference)
        if local_stock:
            stock_release(reference=order.reference)
        order.status = Order.Status.CANCELLED
        order.failure_code = error.code
        order.cancelled_at = timezone.now()
        order.save(update_fields=["status", "failure_code", "cancelled_at"])
    if not local_stock:
        saga.reservation_undo_quietly(reference=order.reference)
    if refund:
        _refund(order=order, provider=provider)


def _order_fail_after_charge(*, order: Order, provider: PaymentProvider, card: str, charge: ChargeResult,
                             error: InventoryUnavailable) -> None:
    """Charged, but the stock could not be confirmed: undo the reservation, cancel the order, refund the charge."""
    error.details = {**error.details, "order": order.reference}
    saga.reservation_undo_quietly(reference=order.reference)
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        _payment_record(order=order, provider=provider, kind=Payment.Kind.CHARGE, status=Payment.Status.SUCCEEDED,
                        card_last4=card[-4:], provider_reference=charge.charge_id)
        if order.status == Order.Status.PLACED:
            order.status = Order.Status.CANCELLED
            order.failure_code = error.code
            order.cancelled_at = timezone.now()
            order.save(update_fields=["status", "failure_code", "cancelled_at"])
    _refund(order=order, provider=provider)


def _order_mark_paid(*, order: Order, provider: PaymentProvider, cart: Cart, card: str,
                     charge: ChargeResult) -> Order:
    local_stock = saga.reservation_is_local(reference=order.reference)
    if not local_stock:
        try:  # the saga's last step; any doubt about it (timeout, 5xx, 409) is undone and refunded
            inventory_confirm(reference=order.reference)
        except (InventoryUnavailable, Conflict, NotFound) as exc:
            error = exc if isinstance(exc, InventoryUnavailable) else InventoryUnavailable(
                f"The inventory service refused to confirm the reservation: {exc.message}")
            _order_fail_after_charge(order=order, provider=provider, card=card, charge=charge, error=error)
            raise error from (None if exc is error else exc)
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        _payment_record(order=order, provider=provider, kind=Payment.Kind.CHARGE, status=Payment.Status.SUCCEEDED,
                        card_last4=card[-4:], provider_reference=charge.charge_id)
        cancelled_meanwhile = order.status != Order.Status.PLACED
        if cancelled_meanwhile:
            if local_stock:
                stock_release(reference=order.reference)  # no-op when whoever cancelled it already did
        else:
            if local_stock:
                stock_confirm(reference=order.reference)
            order.status = Order.Status.PAID
            order.paid_at = timezone.now()
            order.save(update_fields=["status", "paid_at"])
            cart_clear(cart=cart)
    if cancelled_meanwhile:
        if not local_stock:
            saga.reservation_undo_quietly(reference=order.reference)
        _refund(order=order, provider=provider)
        raise Conflict(f"Order {order.reference} was cancelled while it was being paid; the charge was refunded.",
                       details={"order": order.reference})
    return order


def _order_transition_check(*, order: Order, to: str) -> None:
    if order.status == Order.Status.PLACED and to == Order.Status.CANCELLED:
        raise IllegalTransition(
            f"Order {order.reference} is still being paid; try again in a moment.",
            details={"order": order.reference, "status": order.status, "to": to},
        )
    if to not in TRANSITIONS[order.status]:
        raise IllegalTransition(
            f"Order {order.reference} is {order.status}; it cannot become {to}.",
            details={"order": order.reference, "status": order.status, "to": to},
        )


def _order_transition(*, order: Order, to: str) -> tuple[Order, str]:
    """Lock the order and move it to `to` (setting the matching timestamp); returns (order, previous status)."""
    locked = Order.objects.select_for_update().get(pk=order.pk)
    if to not in TRANSITIONS[locked.status]:
        raise IllegalTransition(
            f"Order {locked.reference} is {locked.status}; it cannot become {to}.",
            details={"order": locked.reference, "status": locked.status, "to": to},
        )
    previous = locked.status
    locked.status = to
    stamp = {Order.Status.PAID: "paid_at", Order.Status.SHIPPED: "shipped_at",
             Order.Status.DELIVERED: "delivered_at", Order.Status.CANCELLED: "cancelled_at"}[to]
    setattr(locked, stamp, timezone.now())
    locked.save(update_fields=["status", stamp])
    return locked, previous


def order_cancel(*, order: Order) -> Order:
    """Cancel a paid order: its stock goes back on the shelf and the payment is refunded.

    An order still being paid (placed) cannot be cancelled from outside: the checkout finishes it either way.
    When the inventory service holds the order's stock it is returned there first (idempotent), so a
    service that cannot be reached leaves the order as it was (503 ``inventory_unavailable``, retry later).
    """
    local_stock = saga.reservation_is_local(reference=order.reference)
    if not local_stock:
        current = Order.objects.get(pk=order.pk)
        _order_transition_check(order=current, to=Order.Status.CANCELLED)  # before touching the service's stock
        inventory_return(reference=order.reference)
    with transaction.atomic():
        current = Order.objects.select_for_update().get(pk=order.pk)
        if current.status == Order.Status.PLACED:
            raise IllegalTransition(
                f"Order {current.reference} is still being paid; try again in a moment.",
                details={"order": current.reference, "status": current.status, "to": Order.Status.CANCELLED},
            )
        order, previous = _order_transition(order=order, to=Order.Status.CANCELLED)
        order.failure_code = "cancelled"
        order.save(update_fields=["failure_code"])
        if local_stock:
            stock_return(reference=order.reference)
    if previous == Order.Status.PAID:
        _refund(order=order, provider=payment_provider())
    return order


def order_ship(*, order: Order) -> Order:
    with transaction.atomic():
        order, _ = _order_transition(order=order, to=Order.Status.SHIPPED)
    return order


def order_deliver(*, order: Order) -> Order:
    with transaction.atomic():
        order, _ = _order_transition(order=order, to=Order.Status.DELIVERED)
    return order


def order_expire_stale(*, older_than: timedelta) -> list[Order]:
    """Cancel orders stuck in 'placed' (the process died while paying): release the stock, refund to be safe.

    The charge's outcome is unknown, so it is treated like a timeout. A checkout that is in fact still
    running and finishes later finds its order cancelled and refunds its own charge (see _order_mark_paid).
    """
    cutoff = timezone.now() - older_than
    stale = Order.objects.filter(status=Order.Status.PLACED, placed_at__lt=cutoff).order_by("id")
    provider = payment_provider()
    expired = []
    for order_id in stale.values_list("id", flat=True):
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=order_id)
            if order.status != Order.Status.PLACED:
                continue
            local_stock = saga.reservation_is_local(reference=order.reference)
            if local_stock:
                stock_release(reference=order.reference)
            order.status = Order.Status.CANCELLED
            order.failure_code = "payment_abandoned"
            order.cancelled_at = timezone.now()
            order.save(update_fields=["status", "failure_code", "cancelled_at"])
        if not local_stock:
            saga.reservation_undo_quietly(reference=order.reference)
        _refund(order=order, provider=provider)
        expired.append(order)
    return expired
