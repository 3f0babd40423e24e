"""Orders pages: checkout, order history, order detail (with cancel)."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from monolith.accounts.services import address_build, address_create
from monolith.cart.selectors import cart_get_for_request, cart_totals
from monolith.orders import selectors, services
from monolith.orders.forms import CheckoutForm
from monolith.payments.fake import TEST_CARDS
from monolith.payments.provider import payment_provider
from servicekit.errors import DomainError


def _checkout_page(request, form, totals, *, status=200):
    test_cards = TEST_CARDS if payment_provider().name == "fake" else []
    return render(request, "orders/checkout.html", {"form": form, "totals": totals, "test_cards": test_cards},
                  status=status)


def _fresh_form(request, totals, *, data=None):
    """A form with a new idempotency key and the total now shown (after an error, for the next attempt)."""
    hidden = {"idempotency_key": uuid.uuid4().hex, "expected_total": f"{totals.subtotal:.2f}"}
    if data is None:
        default = next(iter(CheckoutForm(user=request.user).fields["address"].queryset), None)
        return CheckoutForm(user=request.user, initial={**hidden, "address": default})
    data = data.copy()
    data.update(hidden)
    form = CheckoutForm(data, user=request.user)
    form.is_valid()
    return form


@login_required
@require_http_methods(["GET", "POST"])
def checkout(request):
    cart = cart_get_for_request(request=request)
    totals = cart_totals(cart=cart)
    if request.method == "GET":
        if not totals.lines:
            messages.info(request, "Your cart is empty.")
            return redirect("cart:detail")
        return _checkout_page(request, _fresh_form(request, totals), totals)

    form = CheckoutForm(request.POST, user=request.user)
    if not form.is_valid():
        return _checkout_page(request, form, totals, status=400)
    try:
        address = form.cleaned_data["address"]
        if address is None:
            fields = form.new_address_fields()
            if form.cleaned_data["save_address"]:
                address = address_create(user=request.user, **fields)
            else:
                address = address_build(user=request.user, **fields)
        order = services.order_place(
            user=request.user,
            cart=cart,
            address=address,
            card_number=form.cleaned_data["card_number"],
            idempotency_key=form.cleaned_data["idempotency_key"],
            expected_total=form.cleaned_data["expected_total"],
        )
    except DomainError as exc:
        totals = cart_totals(cart=cart)  # e.g. repriced after price_changed
        form = _fresh_form(request, totals, data=request.POST)
        form.add_error(None, exc.message)
        return _checkout_page(request, form, totals, status=exc.status_code)
    messages.success(request, f"Thank you! Order {order.reference} is {order.get_status_display().lower()}.")
    return redirect("orders:detail", reference=order.reference)


@login_required
def order_list(request):
    page = Paginator(selectors.order_list(user=request.user), 20).get_page(request.GET.get("page"))
    return render(request, "orders/list.html", {"page": page})


@login_required
def order_detail(request, reference: str):
    try:
        order = selectors.order_get(user=request.user, reference=reference)
    except DomainError:
        return render(request, "orders/not_found.html", {"reference": reference}, status=404)
    return render(request, "orders/detail.html", {"order": order})


@login_required
@require_POST
def order_cancel(request, reference: str):
    try:
        order = services.order_cancel(order=selectors.order_get(user=request.user, reference=reference))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Order {order.reference} is cancelled; the payment is refunded.")
    return redirect("orders:detail", reference=reference)
