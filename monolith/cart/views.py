"""Cart pages: the cart with update/remove forms and totals; add/update/remove form posts."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from monolith.cart import selectors, services
from servicekit.errors import DomainError, NotFound
from servicekit.ids import MAX_ID


def _back(request, default: str):
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(default)


@require_GET
def cart_detail(request):
    cart = selectors.cart_get_for_request(request=request)
    return render(request, "cart/detail.html", {"totals": selectors.cart_totals(cart=cart)})


@require_POST
def cart_add(request):
    try:
        cart = services.cart_get_or_create_for_request(request=request)
        line = services.cart_add_product(
            cart=cart, product_id=request.POST.get("product_id"), quantity=request.POST.get("quantity", "1")
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return _back(request, reverse("cart:detail"))
    messages.success(request, f"Added {line.product.name} to your cart.")
    return _back(request, reverse("cart:detail"))


@require_POST
def cart_update(request):
    try:
        cart = selectors.cart_get_for_request(request=request)
        if cart is None:
            raise NotFound("That product is not in the cart.")
        services.cart_update_line(
            cart=cart, product_id=_product_id(request), quantity=request.POST.get("quantity")
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Cart updated.")
    return redirect("cart:detail")


@require_POST
def cart_remove(request):
    try:
        cart = selectors.cart_get_for_request(request=request)
        if cart is None:
            raise NotFound("That product is not in the cart.")
        services.cart_remove_line(cart=cart, product_id=_product_id(request))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Removed from your cart.")
    return redirect("cart:detail")


def _product_id(request) -> int:
    raw = request.POST.get("product_id", "")
    # ASCII digits up to a bigint: int() refuses thousands of digits and the database anything past MAX_ID
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_ID)) and int(raw) <= MAX_ID):
        raise NotFound("That product is not in the cart.")
    return int(raw)
