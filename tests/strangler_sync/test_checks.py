"""``manage.py check`` reports a misconfigured data plane (strangler_sync.checks), each with override_settings."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from strangler_sync.aggregates import Aggregate, Schema


def _ids(**overrides) -> dict[str, str]:
    """{check id: message} of the strangler_sync errors under these STRANGLER_SYNC keys."""
    with override_settings(STRANGLER_SYNC={**settings.STRANGLER_SYNC, **overrides}):
        return {m.id: m.msg for m in run_checks() if m.id and m.id.startswith("strangler_sync.")}


def test_the_projects_as_configured_pass():
    assert _ids() == {}
    call_command("check")  # raises SystemCheckError on any error


def test_unknown_key_is_reported_with_the_close_name():
    with override_settings(STRANGLER_SYNC={**settings.STRANGLER_SYNC, "SUBSCRIPTION": ["product.*"]}):
        messages = [m for m in run_checks() if m.id == "strangler_sync.E001"]
        assert [m.msg for m in messages] == ["unknown STRANGLER_SYNC key 'SUBSCRIPTION'"]
        assert "SUBSCRIPTIONS" in messages[0].hint
        with pytest.raises(SystemCheckError, match="SUBSCRIPTION"):
            call_command("check")


@pytest.mark.parametrize("url", ["bogus://host", "amqp://host:notaport//", "localhost:5672"])
def test_bad_broker_url(url):
    assert "broker URL is unusable" in _ids(BROKER_URL=url)["strangler_sync.E002"]


def test_good_broker_urls_pass():
    for url in ("amqp://guest:guest@127.0.0.1:5672//", "filesystem://"):
        assert "strangler_sync.E002" not in _ids(BROKER_URL=url)


@pytest.mark.parametrize(("entry", "says"), [
    ("nowhere.events.THING", "cannot import"),
    ("monolith.settings.PROJECT_NAME", "not an Aggregate"),
    (["monolith.events.PRODUCT", "monolith.events.PRODUCT"], "listed twice"),
])
def test_unresolvable_aggregates(entry, says):
    entries = entry if isinstance(entry, list) else [entry]
    assert says in _ids(AGGREGATES=entries)["strangler_sync.E003"]


def test_legacy_dict_of_aggregates_is_reported():
    assert "must be a list" in _ids(AGGREGATES={"product": {"MODEL": "catalog.Product"}})["strangler_sync.E003"]


def test_handler_for_an_undeclared_aggregate_or_action(swap_handler):
    def ghost_apply(*, event):
        pass

    swap_handler("ghost.created", ghost_apply)
    swap_handler("stock.deleted", ghost_apply)  # stock is declared, but only "changed"s
    errors = sorted(m.msg for m in run_checks() if m.id == "strangler_sync.E004")
    assert len(errors) == 2
    assert "ghost_apply for 'ghost.created': no aggregate 'ghost' is declared" in errors[0]
    assert "for 'stock.deleted': aggregate 'stock' has no action 'deleted'" in errors[1]
    # declaring the aggregate makes its handler valid
    ghost = Aggregate(name="ghost", schemas={1: Schema(required={"id": int})})
    with override_settings(STRANGLER_SYNC={**settings.STRANGLER_SYNC,
                                           "AGGREGATES": [*settings.STRANGLER_SYNC["AGGREGATES"], ghost]}):
        errors = [m.msg for m in run_checks() if m.id == "strangler_sync.E004"]
    assert len(errors) == 1 and "'stock.deleted'" in errors[0]


def test_missing_migration_is_reported():
    # the storefront's capture migration (catalog.0005) depends on strangler_sync's latest: with none of
    # strangler_sync's migrations the graph misses that node, and E005 says so instead of the checks crashing
    with override_settings(MIGRATION_MODULES={"strangler_sync": "tests.strangler_sync.empty_migrations"}):
        errors = [m for m in run_checks() if m.id == "strangler_sync.E005"]
    assert len(errors) == 1 and "nonexistent parent node ('strangler_sync', '0004_outbox_traceparent')" in \
        errors[0].msg
    with override_settings(MIGRATION_MODULES={"strangler_sync": None}):  # disabled on purpose: not an error
        assert not [m for m in run_checks() if m.id == "strangler_sync.E005"]
