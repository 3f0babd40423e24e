"""Schemathesis on the reviews service's published schema: no 5xx, every answer as documented
(tests/api_conformance.py), with the service owning reviews so writes go through.

Who a customer is, the service asks the monolith (REVIEWS["ACCOUNTS_URL"]): a real monolith runs for the
module, and the authenticated calls carry a browser's credentials for one of its staff users: the session
cookie, and a CSRF cookie/header pair for writes (a session key, so the monolith checks no password hash per
call on a busy CI box).
"""

from __future__ import annotations

import pytest
import requests

from tests.api_conformance import HYPOTHESIS_SETTINGS, check_case, load_schema, transaction_kept_open
from tests.extracted.catalog import live

schema = load_schema()
CSRF_TOKEN = "c" * 32
_SESSION_FOR_STAFF = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
user = get_user_model().objects.create_superuser("conformance", "c@x.test", "conformance-pass-1")
session = SessionStore()
session.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                HASH_SESSION_KEY: user.get_session_auth_hash()})
session.create()
print(session.session_key)
"""


@pytest.fixture(scope="module")
def monolith_session(tmp_path_factory) -> tuple[str, str]:
    """(the monolith's /api/me/ URL, a staff user's session key there)."""
    workdir = tmp_path_factory.mktemp("reviews-conformance")
    # one SECRET_KEY for the process that makes the session and the server that reads it
    env = live.project_env(workdir=workdir, DATABASE_URL=f"sqlite:///{workdir / 'monolith.sqlite3'}",
                           STRANGLER_SYNC_RELAY_TRIGGER="none", SECRET_KEY="conformance-" + "k" * 40)
    live.manage(live.MONOLITH_MANAGE, "migrate", "--noinput", "-v", "0", env=env)
    output = live.manage(live.MONOLITH_MANAGE, "shell", "-c", _SESSION_FOR_STAFF, env=env)
    session_key = output.strip().splitlines()[-1]  # the last line: anything before it is start-up chatter
    monolith = live.LiveServer(live.MONOLITH_MANAGE, env=env, log=workdir / "monolith.log")
    try:
        monolith.wait_ready()
        me = requests.get(f"{monolith.url}/api/me/", cookies={"sessionid": session_key}, timeout=30)
        assert me.status_code == 200 and me.json()["is_staff"], me.text  # the calls below really are staff's
        yield f"{monolith.url}/api/me/", session_key
    finally:
        monolith.stop()


@pytest.fixture
def staff_credentials(settings, monolith_session, shelf, reviews_owned):
    accounts_url, session_key = monolith_session
    # generous: the monolith shares a busy CI box with this test
    settings.REVIEWS = {**settings.REVIEWS, "ACCOUNTS_URL": accounts_url, "ACCOUNTS_TIMEOUT": 30.0}
    with transaction_kept_open():
        yield {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session_key}; {settings.CSRF_COOKIE_NAME}={CSRF_TOKEN}",
               "X-CSRFToken": CSRF_TOKEN}


@pytest.mark.slow
@schema.parametrize()
@HYPOTHESIS_SETTINGS
def test_api_conforms_to_its_schema(case, staff_credentials):
    check_case(case, credentials=staff_credentials)
