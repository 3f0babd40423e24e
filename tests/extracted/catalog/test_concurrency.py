"""Owned writes racing on PostgreSQL: duplicates end as one row and Conflicts, versions stay gapless and unique."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection

from extracted.catalog.products import services
from extracted.catalog.products.bootstrap import id_sequences_advance
from extracted.catalog.products.models import Product
from servicekit.errors import Conflict
from strangler_sync.consumer import event_parse, inbox_apply
from strangler_sync.models import OutboxEvent
from strangler_sync.ownership import ownership_set

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RACERS = 4


@pytest.fixture
def owned(sync_config):
    ownership_set(aggregate_type="product", owner="catalog")
    ownership_set(aggregate_type="category", owner="catalog")


def race(work) -> list[str]:
    """Run work(i) in RACERS threads released together; each reports 'ok', 'conflict' or the error."""
    barrier = threading.Barrier(RACERS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            work(index)
            outcome = "ok"
        except Conflict:
            outcome = "conflict"
        except Exception as exc:  # anything else is a bug the test must show
            outcome = f"error: {type(exc).__name__}: {exc}"
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(outcomes)


def test_racing_creates_with_one_sku_leave_one_product_and_one_event(owned):
    outcomes = race(lambda i: services.product_create(sku="RACE-1", name=f"Racer {i}", price="1.00"))
    assert outcomes == ["conflict"] * (RACERS - 1) + ["ok"]
    product = Product.objects.get(sku="RACE-1")
    assert list(OutboxEvent.objects.values_list("event_type", "aggregate_id")) == [
        ("product.created", str(product.id))
    ]


def test_racing_updates_get_consecutive_versions_after_the_monolith_s(owned):
    # the product as synced from the monolith at version 3, then this service takes over
    inbox_apply(event=event_parse(envelope={
        "message_id": str(uuid.uuid4()), "event_type": "product.snapshot", "aggregate_type": "product",
        "aggregate_id": "70", "version": 3, "schema_version": 1, "origin": "monolith",
        "occurred_at": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
        "payload": {"id": 70, "sku": "R-70", "slug": "r-70", "name": "Racer", "price": "1.00", "currency": "USD",
                    "is_active": True, "category_id": None},
    }))  # fmt: skip
    id_sequences_advance()

    def update(i: int) -> None:
        services.product_update(product=Product.objects.get(id=70), data={"price": f"{i + 2}.00"})

    assert race(update) == ["ok"] * RACERS
    events = list(OutboxEvent.objects.order_by("version").values_list("version", "payload"))
    assert [version for version, _ in events] == [4, 5, 6, 7]
    # the last version carries the state that won
    assert events[-1][1]["price"] == str(Product.objects.get(id=70).price)
