"""accounts.services: sign-up validation, addresses with exactly one default."""

from __future__ import annotations

import pytest

from monolith.accounts import selectors, services
from monolith.accounts.models import Address
from servicekit.errors import Conflict, InvalidInput, NotFound
from tests.monolith.accounts.conftest import ADDRESS

pytestmark = pytest.mark.django_db


def test_signup_hashes_the_password(django_user_model):
    user = services.user_signup(username="newbie", email="n@example.com", password="pw-Long-Enough-9")
    assert user.check_password("pw-Long-Enough-9") and user.password != "pw-Long-Enough-9"


def test_signup_refuses_weak_passwords_bad_emails_and_taken_names(shopper, django_user_model):
    with pytest.raises(InvalidInput) as weak:
        services.user_signup(username="newbie", email="n@example.com", password="123")
    assert "password" in weak.value.details
    with pytest.raises(InvalidInput):
        services.user_signup(username="newbie", email="not-an-email", password="pw-Long-Enough-9")
    with pytest.raises(Conflict):  # usernames differing only in case would be confusing
        services.user_signup(username="SHOPPER", email="x@example.com", password="pw-Long-Enough-9")
    assert django_user_model.objects.count() == 1


def test_first_address_is_default_and_a_new_default_replaces_it(shopper):
    first = services.address_create(user=shopper, **ADDRESS)
    second = services.address_create(user=shopper, **{**ADDRESS, "line1": "2 Side St"})
    assert first.is_default and not second.is_default
    third = services.address_create(user=shopper, is_default=True, **{**ADDRESS, "line1": "3 Top St"})
    assert selectors.address_default(user=shopper) == third
    assert Address.objects.filter(user=shopper, is_default=True).count() == 1
    services.address_set_default(user=shopper, address_id=second.id)
    assert selectors.address_list(user=shopper)[0] == second


def test_address_validation(shopper):
    with pytest.raises(InvalidInput) as caught:
        services.address_create(user=shopper, **{**ADDRESS, "country": "Britain", "city": " "})
    assert {"country", "city"} <= set(caught.value.details)
    assert services.address_create(user=shopper, **{**ADDRESS, "country": "gb"}).country == "GB"


def test_deleting_the_default_promotes_the_oldest_remaining(shopper):
    first = services.address_create(user=shopper, **ADDRESS)
    second = services.address_create(user=shopper, **{**ADDRESS, "line1": "2 Side St"})
    services.address_delete(user=shopper, address_id=first.id)
    assert selectors.address_default(user=shopper) == second


def test_other_users_addresses_are_not_found(shopper, django_user_model):
    other = django_user_model.objects.create_user(username="other")
    theirs = services.address_create(user=other, **ADDRESS)
    with pytest.raises(NotFound):
        selectors.address_get(user=shopper, address_id=theirs.id)
    with pytest.raises(NotFound):
        services.address_delete(user=shopper, address_id=theirs.id)
    with pytest.raises(NotFound):
        services.address_set_default(user=shopper, address_id=theirs.id)
