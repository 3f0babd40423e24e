"""servicekit.identity: the monolith's endpoint signs who is asking; a service's DRF class verifies it.

Run with the monolith's settings (the endpoint and its authentication classes are the monolith's); the
service side is exercised by an APIView using EdgeIdentityAuthentication directly.
"""

from __future__ import annotations

import base64
import time

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.core import checks
from django.test import Client, override_settings
from rest_framework.authtoken.models import Token
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from servicekit.identity.authentication import EdgeIdentityAuthentication, IdentityUser
from servicekit.identity.checks import identity_checks
from servicekit.identity.conf import DEV_KEY
from servicekit.identity.tokens import IdentityInvalid, identity_decode
from tests.identity import identity_token

pytestmark = pytest.mark.django_db


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def users(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # a busy CI box: no PBKDF2
    model = get_user_model()
    model.objects.create_user("alice", password="alice-pass-1")
    model.objects.create_user("gone", password="gone-pass-1", is_active=False)
    model.objects.create_superuser("boss", "b@x.test", "boss-pass-1")


def ask(client: Client, audience: str = "catalog", **extra):
    response = client.get(f"/sync/identity/?audience={audience}", **extra)
    assert response.status_code == 200, response.content
    token = response["X-Strangler-Identity"]
    assert response.json()["identity"] == token
    return identity_decode(token=token, audience=audience)


def test_basic_session_and_token_credentials_are_signed_for_the_audience(users):
    client = Client()
    claims = ask(client, HTTP_AUTHORIZATION=basic("alice", "alice-pass-1"))
    assert (claims.username, claims.is_staff, claims.via, claims.refused) == ("alice", False, "basic", None)
    boss = ask(client, HTTP_AUTHORIZATION=basic("boss", "boss-pass-1"))
    assert boss.is_staff and boss.is_superuser
    client.force_login(get_user_model().objects.get(username="alice"))
    assert ask(client).via == "session"
    token = Token.objects.create(user=get_user_model().objects.get(username="boss"))
    assert ask(Client(), HTTP_AUTHORIZATION=f"Token {token.key}").username == "boss"


def test_refused_credentials_are_signed_as_the_monolith_would_answer_them(users):
    client = Client()
    wrong = ask(client, HTTP_AUTHORIZATION=basic("alice", "wrong"))
    assert wrong.user_id is None
    assert wrong.refused == {"status": 403, "exception": "AuthenticationFailed",
                             "message": "Invalid username/password.", "challenge": None}
    assert ask(client, HTTP_AUTHORIZATION=basic("gone", "gone-pass-1")).refused["status"] == 403
    # the monolith's own answer to the same credentials on an API view
    monolith = client.get("/api/products/", HTTP_AUTHORIZATION=basic("alice", "wrong"))
    assert monolith.status_code == 403
    assert monolith.json()["error"]["message"] == "Invalid username/password."


def test_no_or_ignored_credentials_are_anonymous(users):
    assert ask(Client()).user_id is None and ask(Client()).refused is None
    expired = Client()
    expired.cookies["sessionid"] = "expired-or-forged"
    assert ask(expired).user_id is None


def test_bad_audience_is_400_and_tokens_do_not_cross_audiences(users):
    assert Client().get("/sync/identity/?audience=Not%20a%20name").status_code == 400
    assert Client().get("/sync/identity/").status_code == 400
    token = Client().get("/sync/identity/?audience=catalog", HTTP_AUTHORIZATION=basic("alice", "alice-pass-1"))
    with pytest.raises(IdentityInvalid):
        identity_decode(token=token["X-Strangler-Identity"], audience="reviews")


def test_expired_wrong_key_and_unsigned_tokens_are_invalid():
    with pytest.raises(IdentityInvalid):
        identity_decode(token=identity_token(audience="catalog", now=time.time() - 600), audience="catalog")
    with pytest.raises(IdentityInvalid):
        identity_decode(token=identity_token(audience="catalog", key="another-key-" + "x" * 32), audience="catalog")
    unsigned = jwt.encode({"aud": "catalog", "iss": "strangler-identity", "sub": "1", "iat": int(time.time()),
                           "exp": int(time.time()) + 60}, None, algorithm="none")
    with pytest.raises(IdentityInvalid):
        identity_decode(token=unsigned, audience="catalog")


class WhoAmI(APIView):
    authentication_classes = [EdgeIdentityAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"id": request.user.id, "username": request.user.username, "staff": request.user.is_staff})

    def post(self, request):
        return self.get(request)


def call(method: str = "get", **meta):
    request = getattr(APIRequestFactory(enforce_csrf_checks=True), method)("/whoami/", **meta)
    return WhoAmI.as_view()(request)


@override_settings(STRANGLER_IDENTITY={"AUDIENCE": "catalog"})
def test_the_service_class_turns_the_identity_into_request_user():
    response = call(HTTP_X_STRANGLER_IDENTITY=identity_token(audience="catalog", user_id=5, username="eve",
                                                             is_staff=True))
    assert response.status_code == 200 and response.data == {"id": 5, "username": "eve", "staff": True}
    assert call().status_code == 403  # no identity: anonymous, no challenge (as on the monolith)
    for forged in ("not-a-jwt", identity_token(audience="reviews"),
                   identity_token(audience="catalog", key="forger-" + "k" * 40)):
        refused = call(HTTP_X_STRANGLER_IDENTITY=forged)
        assert refused.status_code == 403 and refused.data["error"]["code"] == "authentication_failed"


@override_settings(STRANGLER_IDENTITY={"AUDIENCE": "catalog"})
def test_a_signed_refusal_is_answered_like_the_monolith():
    refusal = {"status": 403, "exception": "AuthenticationFailed", "message": "Invalid username/password.",
               "challenge": None}
    response = call(HTTP_X_STRANGLER_IDENTITY=identity_token(audience="catalog", refused=refusal))
    assert response.status_code == 403
    assert response.data == {"error": {"code": "authentication_failed", "message": "Invalid username/password.",
                                       "details": {}}}
    challenged = {**refusal, "status": 401, "challenge": 'Basic realm="api"'}
    response = call(HTTP_X_STRANGLER_IDENTITY=identity_token(audience="catalog", refused=challenged))
    assert response.status_code == 401 and response["WWW-Authenticate"] == 'Basic realm="api"'


@override_settings(STRANGLER_IDENTITY={"AUDIENCE": "catalog"})
def test_a_session_identity_needs_the_csrf_pair_on_writes():
    token = identity_token(audience="catalog", via="session")
    refused = call("post", HTTP_X_STRANGLER_IDENTITY=token)
    assert refused.status_code == 403 and "CSRF Failed" in refused.data["error"]["message"]
    basic_write = call("post", HTTP_X_STRANGLER_IDENTITY=identity_token(audience="catalog", via="basic"))
    assert basic_write.status_code == 200


def test_identity_user_is_enough_for_drf_and_django():
    user = IdentityUser(id=3, username="u")
    assert user.is_authenticated and not user.is_anonymous and user.pk == 3 and str(user) == "u"


def test_system_checks_want_a_key_and_a_service_audience(settings, monkeypatch):
    monkeypatch.delenv("STRANGLER_IDENTITY_KEY", raising=False)
    settings.DEBUG = False
    settings.STRANGLER_IDENTITY = {}
    assert [e.id for e in identity_checks()] == ["servicekit_identity.E001"]
    settings.STRANGLER_IDENTITY = {"KEY": "short"}
    assert [e.id for e in identity_checks()] == ["servicekit_identity.E002"]
    settings.STRANGLER_IDENTITY = {"KEY": "k" * 32}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_AUTHENTICATION_CLASSES": [
        "servicekit.identity.authentication.EdgeIdentityAuthentication"]}
    assert [e.id for e in identity_checks()] == ["servicekit_identity.E003"]
    settings.STRANGLER_IDENTITY = {"KEY": "k" * 32, "AUDIENCE": "catalog"}
    assert identity_checks() == []
    settings.DEBUG = True
    settings.STRANGLER_IDENTITY = {"AUDIENCE": "catalog"}
    assert identity_checks() == [] and len(DEV_KEY) >= 32
    assert all(isinstance(e, checks.CheckMessage) for e in identity_checks())


@override_settings(ROOT_URLCONF="servicekit.health", DEBUG=False, STRANGLER_IDENTITY={})
def test_a_project_that_neither_signs_nor_verifies_needs_no_key(monkeypatch):
    monkeypatch.delenv("STRANGLER_IDENTITY_KEY", raising=False)
    assert identity_checks() == []
