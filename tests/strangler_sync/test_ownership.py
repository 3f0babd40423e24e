"""Ownership in the project's database: epochs, the in-transaction fence, the seed file, the endpoint, the command,
and followers refusing a stale owner's events."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import close_old_connections, connection, transaction
from rest_framework.test import APIClient

from monolith import events
from monolith.catalog.models import Product
from servicekit.errors import api_exception_handler
from strangler_sync.consumer import APPLIED, FENCED, event_parse, inbox_apply, inbox_apply_batch
from strangler_sync.errors import NotOwner, SchemaError, StaleEpoch
from strangler_sync.models import InboxMessage, Ownership
from strangler_sync.ownership import (
    ownership_fence,
    ownership_is_owner,
    ownership_map,
    ownership_owner_get,
    ownership_require_owner,
    ownership_set,
    ownership_states,
)
from strangler_sync.relay import event_envelope
from strangler_sync.services import event_publish
from tests.strangler_sync.conftest import T0, product_payload
from tests.verify_token import verify_headers

pytestmark = pytest.mark.django_db


def test_the_monolith_owns_everything_by_default():
    assert ownership_owner_get(aggregate_type="product") == "monolith"
    ownership_require_owner(aggregate_type="product")  # no error
    assert ownership_states() == []


def test_a_flip_refuses_writes_with_409_not_owner():
    assert ownership_set(aggregate_type="product", owner="catalog") == {
        "aggregate": "product", "owner": "catalog", "epoch": 1, "previous_owner": "monolith", "previous_epoch": 0}
    with pytest.raises(NotOwner) as caught:
        ownership_require_owner(aggregate_type="product")
    response = api_exception_handler(caught.value, {})
    assert response.status_code == 409
    assert response.data["error"]["code"] == "not_owner"
    assert response.data["error"]["details"] == {"aggregate": "product", "owner": "catalog", "project": "monolith"}
    ownership_require_owner(aggregate_type="category")  # others untouched
    assert ownership_is_owner(aggregate_type="product", project="catalog")


def test_epochs_only_move_up_and_a_repeated_flip_is_idempotent():
    assert ownership_set(aggregate_type="product", owner="catalog", epoch=5)["epoch"] == 5
    assert ownership_set(aggregate_type="product", owner="catalog", epoch=5)["previous_epoch"] == 5  # same: no-op
    assert ownership_set(aggregate_type="product", owner="catalog")["epoch"] == 5  # same owner, no epoch: no-op
    with pytest.raises(StaleEpoch):
        ownership_set(aggregate_type="product", owner="monolith", epoch=4)
    with pytest.raises(StaleEpoch):
        ownership_set(aggregate_type="product", owner="monolith", epoch=5)  # same epoch, another owner
    assert ownership_set(aggregate_type="product", owner="monolith")["epoch"] == 6
    assert Ownership.objects.get(aggregate_type="product").owner == "monolith"


def test_the_file_is_only_a_seed(settings, tmp_path):
    path = tmp_path / "owners.yaml"
    path.write_text("owners:\n  stock: inventory\n")
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "OWNERSHIP_FILE": str(path)}
    assert ownership_map() == {"stock": "inventory"}
    assert ownership_states() == [{"aggregate": "stock", "owner": "inventory", "epoch": 0, "stored": False}]
    ownership_set(aggregate_type="stock", owner="monolith")  # stores the seed's row, then flips it
    path.write_text("owners:\n  stock: inventory\n  product: catalog\n")
    assert ownership_owner_get(aggregate_type="stock") == "monolith"  # the database wins once it has a row
    assert ownership_owner_get(aggregate_type="product") == "catalog"  # still the seed: no row yet
    assert [s["epoch"] for s in ownership_states()] == [0, 1]


def _product() -> Product:
    return Product.objects.create(sku="F-1", name="Fence", slug="fence", price=Decimal("1.00"))


def test_the_write_is_fenced_inside_its_transaction_and_its_event_carries_the_epoch(explicit_product):
    ownership_set(aggregate_type="product", owner="monolith", epoch=3)
    with transaction.atomic():
        product = _product()
        event = event_publish(event_type=events.PRODUCT_CREATED, aggregate_type="product", aggregate_id=product.id,
                              payload=product_payload(product.id))
    assert event.epoch == 3 and event_envelope(event)["epoch"] == 3
    # the early check passed before the flip; the transaction sees the flip and the write rolls back
    ownership_require_owner(aggregate_type="product")
    ownership_set(aggregate_type="product", owner="catalog", epoch=4)
    with pytest.raises(NotOwner), transaction.atomic():
        Product.objects.filter(id=product.id).update(name="after the flip")
        event_publish(event_type=events.PRODUCT_UPDATED, aggregate_type="product", aggregate_id=product.id,
                      payload=product_payload(product.id))
    assert Product.objects.get(id=product.id).name == "Fence"


def _envelope(version: int, epoch: int | None) -> dict:
    body = {
        "message_id": str(uuid.uuid4()), "event_type": events.PRODUCT_UPDATED, "aggregate_type": "product",
        "aggregate_id": "1", "version": version, "schema_version": 1, "payload": product_payload(1),
        "occurred_at": T0.isoformat(), "origin": "catalog", "correlation_id": "",
    }
    if epoch is not None:
        body["epoch"] = epoch
    return body


@pytest.mark.django_db(transaction=True)
def test_a_follower_refuses_events_of_an_older_epoch():
    ownership_set(aggregate_type="product", owner="catalog", epoch=2)
    assert inbox_apply(event=event_parse(envelope=_envelope(1, 2))) == APPLIED
    assert inbox_apply(event=event_parse(envelope=_envelope(2, 1))) == FENCED
    assert inbox_apply(event=event_parse(envelope=_envelope(3, None))) == APPLIED  # no epoch: an old publisher
    with transaction.atomic():
        outcomes = inbox_apply_batch(events=[event_parse(envelope=_envelope(v, e)) for v, e in ((4, 1), (5, 3))])
    assert outcomes == [FENCED, APPLIED]
    assert InboxMessage.objects.filter(outcome="fenced").count() == 2
    with pytest.raises(SchemaError) as caught:
        event_parse(envelope=_envelope(6, -1))
    assert "epoch" in caught.value.details


def test_the_endpoint_reads_openly_and_flips_with_the_verify_token():
    client = APIClient()
    ownership_set(aggregate_type="review", owner="monolith")
    assert client.get("/sync/ownership/").json() == {
        "project": "monolith", "owners": [{"aggregate": "review", "owner": "monolith", "epoch": 0, "stored": True}]}
    body = {"aggregate": "product", "owner": "catalog", "epoch": 7}
    assert client.post("/sync/ownership/", body, format="json").status_code in (401, 403)
    answer = client.post("/sync/ownership/", body, format="json", headers=verify_headers())
    assert answer.status_code == 200, answer.content
    assert answer.json()["epoch"] == 7 and ownership_owner_get(aggregate_type="product") == "catalog"
    again = client.post("/sync/ownership/", body, format="json", headers=verify_headers())
    assert again.status_code == 200  # idempotent: a control plane may retry
    stale = client.post("/sync/ownership/", {**body, "owner": "monolith", "epoch": 6}, format="json",
                        headers=verify_headers())
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "stale_epoch"
    bad = client.post("/sync/ownership/", {"aggregate": "Product!", "owner": "x"}, format="json",
                      headers=verify_headers())
    assert bad.status_code == 400


def test_command_sets_and_prints(capsys):
    call_command("sync_ownership", "--set", "product=catalog")
    call_command("sync_ownership", "--set", "review=reviews@4")
    out = capsys.readouterr().out
    assert "product: catalog epoch 1" in out and "review: reviews epoch 4" in out
    assert ownership_owner_get(aggregate_type="product") == "catalog"
    with pytest.raises(CommandError, match="epoch 4"):
        call_command("sync_ownership", "--set", "review=monolith@2")
    with pytest.raises(CommandError, match="AGGREGATE=OWNER"):
        call_command("sync_ownership", "--set", "review=monolith@x")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_flip_waits_for_the_write_in_flight_and_later_writes_see_it():
    """A write holds the ownership row (FOR KEY SHARE) until it commits: the flip (FOR UPDATE) waits for it, and a
    write that starts while the flip is pending waits and then refuses."""
    ownership_set(aggregate_type="product", owner="monolith")
    product = _product()
    in_flight, flipped, results = threading.Event(), threading.Event(), {}

    def flip():
        try:
            ownership_set(aggregate_type="product", owner="catalog")
            flipped.set()
        finally:
            close_old_connections()
            connection.close()

    with transaction.atomic():
        assert ownership_fence(aggregate_type="product") == 0
        thread = threading.Thread(target=flip)
        thread.start()
        in_flight.set()
        time.sleep(0.5)
        results["flipped_before_commit"] = flipped.is_set()
        Product.objects.filter(id=product.id).update(name="committed before the flip")
    thread.join(timeout=60)
    assert results["flipped_before_commit"] is False and flipped.is_set()
    with pytest.raises(NotOwner), transaction.atomic():
        ownership_fence(aggregate_type="product")
    assert ownership_states()[0]["epoch"] == 1


def test_a_captured_product_write_is_fenced_inside_its_transaction_too(monkeypatch):
    """Product is captured by triggers (no event_publish on its path): its services fence the transaction."""
    from monolith.catalog import services

    ownership_set(aggregate_type="product", owner="monolith", epoch=5)
    with transaction.atomic():
        product = _product()
    # the early check passed just before the flip landed: only the fence inside the transaction is left
    monkeypatch.setattr(services, "ownership_require_owner", lambda **kwargs: None)
    ownership_set(aggregate_type="product", owner="catalog", epoch=6)
    with pytest.raises(NotOwner):
        services.product_update(product=product, data={"name": "after the flip"})
    assert Product.objects.get(id=product.id).name == "Fence"
