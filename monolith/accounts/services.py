"""Accounts writes: sign-up and addresses."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction

from monolith.accounts.models import Address
from servicekit.errors import Conflict, InvalidInput, NotFound


def user_signup(*, username: str, email: str, password: str):
    """Create a customer account (validated like Django's own forms)."""
    User = get_user_model()
    user = User(username=username, email=email)
    try:
        user.full_clean(exclude=["password"])
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        details = exc.message_dict if hasattr(exc, "error_dict") else {"password": exc.messages}
        raise InvalidInput("Invalid sign-up data.", details=details) from None
    user.set_password(password)
    with transaction.atomic():
        if User.objects.filter(username__iexact=username).exists():
            raise Conflict("That username is taken.", details={"username": ["That username is taken."]})
        user.save()
    return user


def address_build(
    *, user, name: str, line1: str, city: str, postal_code: str, country: str, line2: str = ""
) -> Address:
    """A validated, unsaved address (checkout snapshots one without keeping it)."""
    address = Address(
        user=user,
        name=(name or "").strip(),
        line1=(line1 or "").strip(),
        line2=(line2 or "").strip(),
        city=(city or "").strip(),
        postal_code=(postal_code or "").strip(),
        country=(country or "").strip().upper(),
    )
    try:
        address.full_clean(exclude=["user", "is_default"])
    except DjangoValidationError as exc:
        raise InvalidInput("Invalid address.", details=exc.message_dict) from None
    return address


def address_create(*, user, is_default: bool = False, **fields) -> Address:
    """Save an address; the user's first address, or one asked to be, becomes the default."""
    address = address_build(user=user, **fields)
    with transaction.atomic():
        # Lock the user's addresses so two concurrent "make default" writes cannot both win.
        existing = list(Address.objects.select_for_update().filter(user=user).order_by("id"))
        address.is_default = is_default or not existing
        if address.is_default:
            Address.objects.filter(user=user, is_default=True).update(is_default=False)
        address.save()
    return address


def address_set_default(*, user, address_id: int) -> Address:
    with transaction.atomic():
        addresses = {a.id: a for a in Address.objects.select_for_update().filter(user=user).order_by("id")}
        address = addresses.get(address_id)
        if address is None:
            raise NotFound("No such address.", details={"address": address_id})
        Address.objects.filter(user=user, is_default=True).exclude(id=address_id).update(is_default=False)
        address.is_default = True
        address.save(update_fields=["is_default"])
    return address


def address_delete(*, user, address_id: int) -> None:
    """Delete an address; when it was the default, the oldest remaining one takes over."""
    with transaction.atomic():
        addresses = list(Address.objects.select_for_update().filter(user=user).order_by("id"))
        address = next((a for a in addresses if a.id == address_id), None)
        if address is None:
            raise NotFound("No such address.", details={"address": address_id})
        rest = [a for a in addresses if a.id != address_id]
        address.delete()
        if address.is_default and rest:
            rest[0].is_default = True
            rest[0].save(update_fields=["is_default"])
