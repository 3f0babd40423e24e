"""Service bearer tokens: the right token is staff, a wrong one is refused, other schemes are left alone."""

from __future__ import annotations

import pytest
from rest_framework import exceptions
from rest_framework.test import APIRequestFactory

from servicekit.service_token import ServicePrincipal, ServiceTokenAuthentication


class TwoTokens(ServiceTokenAuthentication):
    def tokens(self) -> list[str]:
        return ["", "first-token", "second-token"]


def _request(authorization: str | None):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    return APIRequestFactory().post("/api/stock/", **headers)


@pytest.mark.parametrize("token", ["first-token", "second-token"])
def test_a_configured_token_authenticates_as_staff_service(token):
    user, auth = TwoTokens().authenticate(_request(f"Bearer {token}"))
    assert isinstance(user, ServicePrincipal) and user.is_staff and user.is_authenticated and auth is None


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Token abc"])
def test_other_schemes_are_left_to_other_authenticators(header):
    assert TwoTokens().authenticate(_request(header)) is None


@pytest.mark.parametrize("header", ["Bearer wrong", "Bearer ", "Bearer a b", "bearer first-token-x"])
def test_wrong_or_malformed_tokens_are_refused(header):
    with pytest.raises(exceptions.AuthenticationFailed):
        TwoTokens().authenticate(_request(header))


def test_an_unset_token_setting_refuses_every_token():
    class Unset(ServiceTokenAuthentication):
        def tokens(self) -> list[str]:
            return [""]

    with pytest.raises(exceptions.AuthenticationFailed):
        Unset().authenticate(_request("Bearer anything"))


def test_no_challenge_so_anonymous_writes_get_403_not_401():
    assert TwoTokens().authenticate_header(_request(None)) is None
