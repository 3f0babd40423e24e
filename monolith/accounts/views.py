"""Accounts pages: sign up, log in (merging the visitor's cart), log out, profile with addresses."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from monolith.accounts import selectors, services
from monolith.accounts.forms import AddressForm, SignupForm
from monolith.cart.selectors import cart_get_for_request
from monolith.cart.services import cart_get_or_create_for_user, cart_merge
from servicekit.errors import DomainError


def _login_keeping_cart(request, user) -> None:
    """Log the user in; the cart they filled while anonymous is merged into their own (explicitly, no signal)."""
    anonymous_cart = cart_get_for_request(request=request) if not request.user.is_authenticated else None
    auth_login(request, user)
    if anonymous_cart is not None:
        cart_merge(source=anonymous_cart, target=cart_get_or_create_for_user(user=user))


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form):
        _login_keeping_cart(self.request, form.get_user())
        return redirect(self.get_success_url())


class LogoutView(auth_views.LogoutView):
    """POST only (Django's LogoutView refuses GET)."""


@require_http_methods(["GET", "POST"])
def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_signup(
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            _login_keeping_cart(request, user)
            messages.success(request, f"Welcome, {user.username}!")
            return redirect("accounts:profile")
    return render(request, "accounts/signup.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    form = AddressForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            services.address_create(user=request.user, is_default=data.pop("is_default"), **data)
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Address saved.")
            return redirect("accounts:profile")
    context = {"form": form, "addresses": selectors.address_list(user=request.user)}
    return render(request, "accounts/profile.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def address_make_default(request, address_id: int):
    try:
        services.address_set_default(user=request.user, address_id=address_id)
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("accounts:profile")


@login_required
@require_POST
def address_remove(request, address_id: int):
    try:
        services.address_delete(user=request.user, address_id=address_id)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Address removed.")
    return redirect("accounts:profile")
