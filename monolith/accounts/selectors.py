"""Accounts reads: a user's addresses."""

from __future__ import annotations

from monolith.accounts.models import Address
from servicekit.errors import NotFound


def address_list(*, user) -> list[Address]:
    return list(Address.objects.filter(user=user).order_by("-is_default", "id"))


def address_get(*, user, address_id: int) -> Address:
    address = Address.objects.filter(user=user, id=address_id).first()
    if address is None:
        raise NotFound("No such address.", details={"address": address_id})
    return address


def address_default(*, user) -> Address | None:
    return Address.objects.filter(user=user, is_default=True).first()
