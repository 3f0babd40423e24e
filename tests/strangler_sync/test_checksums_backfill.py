"""Checksums (buckets, drill-down, endpoint) and backfill (snapshots, versions, resume, direct publish)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import transaction
from rest_framework.test import APIClient

from monolith import events
from monolith.catalog.models import Category, Product
from strangler_sync.backfill import backfill_run
from strangler_sync.checks import check_verify_token
from strangler_sync.checksums import bucket_bounds, checksum_buckets, checksum_rows
from strangler_sync.conf import sync_settings
from strangler_sync.models import BackfillCheckpoint, OutboxEvent
from strangler_sync.relay import relay_run
from strangler_sync.services import event_publish
from strangler_sync.verify import MAX_BUCKETS, VerifyError, verify_aggregate
from tests.strangler_sync.conftest import drain_queue, make_product, product_payload
from tests.verify_token import verify_headers

# product events are published by hand here: product as an explicit aggregate (conftest.explicit_product)
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("explicit_product")]


def test_bucket_bounds_partition_the_range():
    for start, end, n in [(1, 1000, 7), (5, 5, 3), (1, 10, 100), (-3, 1_000_003, 256)]:
        bounds = bucket_bounds(start=start, end=end, buckets=n)
        assert bounds[0][0] == start and bounds[-1][1] == end
        assert all(lo <= hi for lo, hi in bounds)
        assert all(bounds[i][1] + 1 == bounds[i + 1][0] for i in range(len(bounds) - 1))


def test_bucket_checksums_change_only_where_rows_change():
    for i in range(1, 41):
        make_product(i)
    before = checksum_buckets(aggregate_type="product", start=1, end=40, buckets=8)
    assert [b["count"] for b in before] == [5] * 8
    Product.objects.filter(id=23).update(price=Decimal("99.00"))
    after = checksum_buckets(aggregate_type="product", start=1, end=40, buckets=8)
    assert [i for i in range(8) if before[i]["checksum"] != after[i]["checksum"]] == [4]
    rows = checksum_rows(aggregate_type="product", start=21, end=25)
    assert sorted(rows) == ["21", "22", "23", "24", "25"]


def test_checksum_endpoint():
    for i in range(1, 11):
        make_product(i)
    api = APIClient()
    assert api.get("/sync/checksums/product/").status_code == 403  # no token, no hashes
    api.credentials(HTTP_AUTHORIZATION="Bearer not-the-token")
    assert api.get("/sync/checksums/product/").status_code == 403
    api.credentials(HTTP_AUTHORIZATION=verify_headers()["Authorization"])
    stats = api.get("/sync/checksums/product/").json()
    assert (stats["count"], stats["min_id"], stats["max_id"]) == (10, 1, 10)
    bucketed = api.get("/sync/checksums/product/", {"buckets": 2, "start": 1, "end": 20}).json()
    assert [(b["start"], b["end"], b["count"]) for b in bucketed["buckets"]] == [(1, 10, 10), (11, 20, 0)]
    drill = api.get("/sync/checksums/product/", {"start": 3, "end": 4}).json()
    assert set(drill["rows"]) == {"3", "4"}
    bad = api.get("/sync/checksums/product/", {"start": 3})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"
    unknown = api.get("/sync/checksums/nothing/")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_aggregate"


def test_backfill_emits_snapshots_with_current_versions():
    for i in range(1, 6):
        make_product(i)
    with transaction.atomic():  # product 2 already had two live events
        for _ in range(2):
            event_publish(event_type=events.PRODUCT_UPDATED, aggregate_type="product", aggregate_id=2,
                          payload=product_payload(2))
    result = backfill_run(aggregate_type="product", batch_size=2)
    assert result.emitted == 5
    snapshots = OutboxEvent.objects.filter(event_type=events.PRODUCT_SNAPSHOT).order_by("id")
    assert [(e.aggregate_id, e.version) for e in snapshots] == [("1", 1), ("2", 2), ("3", 1), ("4", 1), ("5", 1)]
    assert snapshots[0].payload["sku"] == "SKU-1" and snapshots[0].payload["price"] == "10.00"
    checkpoint = BackfillCheckpoint.objects.get(aggregate_type="product")
    assert (checkpoint.last_id, checkpoint.emitted, checkpoint.finished) == (5, 5, True)


def test_backfill_resumes_after_a_crash():
    for i in range(1, 8):
        make_product(i)
    batches = []

    def crash_after_two_batches(n):
        batches.append(n)
        if len(batches) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backfill_run(aggregate_type="product", batch_size=3, progress=crash_after_two_batches)
    assert BackfillCheckpoint.objects.get().last_id == 6
    result = backfill_run(aggregate_type="product", batch_size=3, resume=True)
    assert result.emitted == 1
    ids = list(OutboxEvent.objects.values_list("aggregate_id", flat=True))
    assert sorted(ids, key=int) == [str(i) for i in range(1, 8)]  # each row once, none skipped


@pytest.mark.django_db(transaction=True)
def test_backfill_direct_and_command(settings, capsys):
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "SUBSCRIBERS": {"sync.catalog": ["product.*"]}}
    for i in range(1, 4):
        make_product(i)
    call_command("sync_backfill", "--aggregate", "product", "--direct", "--no-progress")
    assert "3 snapshot(s) published" in capsys.readouterr().out
    assert not OutboxEvent.objects.exists()
    queue = sync_settings().subscribers and next(iter(sync_settings().subscribers))
    received = drain_queue(queue)
    assert sorted(m.payload["aggregate_id"] for m in received) == ["1", "2", "3"]
    assert {m.payload["event_type"] for m in received} == {events.PRODUCT_SNAPSHOT}
    call_command("sync_backfill", "--aggregate", "product", "--no-progress")
    assert relay_run(once=True) == 3


@pytest.mark.django_db
def test_backfill_command_takes_several_aggregates_in_order(capsys):
    category = Category.objects.create(name="Tools", slug="tools")
    make_product(1)
    call_command("sync_backfill", "--aggregate", "category", "--aggregate", "product", "--no-progress")
    out = capsys.readouterr().out
    assert out.index("backfill category: 1 snapshot(s)") < out.index("backfill product: 1 snapshot(s)")
    assert list(OutboxEvent.objects.order_by("id").values_list("event_type", "aggregate_id")) == [
        (events.CATEGORY_SNAPSHOT, str(category.id)), (events.PRODUCT_SNAPSHOT, "1")]


@pytest.mark.rabbitmq
@pytest.mark.django_db(transaction=True)
def test_backfill_direct_on_rabbitmq_sends_each_batch_in_one_write_and_checkpoints_after_the_confirms(on_rabbitmq):
    on_rabbitmq.STRANGLER_SYNC = {**on_rabbitmq.STRANGLER_SYNC, "SUBSCRIBERS": {"sync.catalog": ["product.*"]}}
    for i in range(1, 26):
        make_product(i)
    result = backfill_run(aggregate_type="product", batch_size=10, direct=True)
    assert (result.emitted, result.last_id) == (25, 25)
    assert BackfillCheckpoint.objects.get().finished
    received = drain_queue(next(iter(sync_settings().subscribers)))
    assert sorted(int(m.payload["aggregate_id"]) for m in received) == list(range(1, 26))
    assert {m.payload["event_type"] for m in received} == {events.PRODUCT_SNAPSHOT}


def _awkward_listed_products() -> None:
    """Awkward rows whose images are lists (the product schema's type), including the JSON edge cases."""
    from tests.strangler_sync.test_checksums import AWKWARD_JSON, _awkward_products

    _awkward_products()
    for product in Product.objects.all():
        if not isinstance(product.images, list):
            Product.objects.filter(pk=product.pk).update(images=AWKWARD_JSON[6 if product.pk % 2 else 4])


@pytest.mark.postgres
def test_backfill_in_one_statement_writes_what_the_python_path_writes():
    _awkward_listed_products()
    with transaction.atomic():  # product 102 had live events: its snapshot carries the current version
        for _ in range(3):
            event_publish(event_type=events.PRODUCT_UPDATED, aggregate_type="product", aggregate_id=102,
                          payload=product_payload(102))
    from strangler_sync import backfill

    assert backfill._sql_plan(config=sync_settings().aggregate("product"), event_type=events.PRODUCT_SNAPSHOT)

    def written():
        rows = OutboxEvent.objects.filter(event_type=events.PRODUCT_SNAPSHOT).order_by("id")
        return [(e.aggregate_id, e.version, e.payload, e.origin, e.status, e.schema_version) for e in rows]

    python = backfill_run(aggregate_type="product", batch_size=3, engine="python")
    by_python = written()
    OutboxEvent.objects.filter(event_type=events.PRODUCT_SNAPSHOT).delete()
    in_sql = backfill_run(aggregate_type="product", batch_size=3)
    assert (in_sql.emitted, in_sql.last_id) == (python.emitted, python.last_id) == (8, 108)
    assert written() == by_python
    assert [row[:2] for row in by_python][:2] == [("101", 1), ("102", 3)]
    assert len(set(OutboxEvent.objects.values_list("message_id", flat=True))) == OutboxEvent.objects.count()


def test_backfill_refuses_a_row_the_schema_refuses_on_every_path():
    from strangler_sync.errors import SchemaError

    for i in range(1, 6):
        make_product(i)
    Product.objects.filter(pk=4).update(images={"not": "a list"})
    with pytest.raises(SchemaError):
        backfill_run(aggregate_type="product", batch_size=2)
    checkpoint = BackfillCheckpoint.objects.get()
    assert checkpoint.last_id == 2 and not checkpoint.finished  # the batches before it went out
    assert sorted(OutboxEvent.objects.values_list("aggregate_id", flat=True)) == ["1", "2"]


@pytest.mark.rabbitmq
@pytest.mark.django_db(transaction=True)
def test_backfill_direct_checkpoints_a_batch_only_after_its_confirms_while_the_next_is_in_flight(on_rabbitmq):
    on_rabbitmq.STRANGLER_SYNC = {**on_rabbitmq.STRANGLER_SYNC, "SUBSCRIBERS": {"sync.catalog": ["product.*"]}}
    for i in range(1, 11):
        make_product(i)
    published = []

    def crash_after_the_second_batch(n):
        published.append(n)
        if len(published) == 2:  # batch 2 is published, its confirms not awaited yet
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backfill_run(aggregate_type="product", batch_size=3, direct=True, progress=crash_after_the_second_batch)
    checkpoint = BackfillCheckpoint.objects.get()
    assert (checkpoint.last_id, checkpoint.emitted, checkpoint.finished) == (3, 3, False)
    result = backfill_run(aggregate_type="product", batch_size=3, direct=True, resume=True)
    assert (result.emitted, result.last_id) == (7, 10)
    checkpoint.refresh_from_db()
    assert (checkpoint.last_id, checkpoint.emitted, checkpoint.finished) == (10, 10, True)
    received = sorted(int(m.payload["aggregate_id"]) for m in drain_queue(next(iter(sync_settings().subscribers))))
    assert received == [1, 2, 3, 4, 4, 5, 5, 6, 6, 7, 8, 9, 10]  # batch 2 again: at least once, never skipped


@pytest.mark.postgres
@pytest.mark.rabbitmq
@pytest.mark.django_db(transaction=True)
def test_backfill_direct_sends_the_same_messages_on_both_paths(on_rabbitmq):
    on_rabbitmq.STRANGLER_SYNC = {**on_rabbitmq.STRANGLER_SYNC, "SUBSCRIBERS": {"sync.catalog": ["product.*"]}}
    _awkward_listed_products()
    queue = next(iter(sync_settings().subscribers))

    def sent(engine):
        result = backfill_run(aggregate_type="product", batch_size=3, direct=True, engine=engine)
        assert (result.emitted, result.last_id) == (8, 108)
        messages = sorted(drain_queue(queue), key=lambda m: int(m.payload["aggregate_id"]))
        assert len({m.payload["message_id"] for m in messages}) == 8
        drop = ("message_id", "occurred_at")
        return [({k: v for k, v in m.payload.items() if k not in drop}, m.content_type) for m in messages]

    assert sent("python") == sent("auto")


def test_checksum_endpoint_bounds_buckets_and_needs_its_token(settings):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=verify_headers()["Authorization"])
    assert api.get("/sync/checksums/product/", {"buckets": MAX_BUCKETS}).status_code == 200
    over = api.get("/sync/checksums/product/", {"buckets": MAX_BUCKETS + 1})
    assert over.status_code == 400 and over.json()["error"]["code"] == "invalid"
    with pytest.raises(VerifyError, match="buckets must be between 1 and 400"):
        verify_aggregate(source="http://a", follower="http://b", aggregate="product", buckets=MAX_BUCKETS + 1)
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "VERIFY_TOKEN": "another-token"}
    assert api.get("/sync/checksums/product/").status_code == 403  # the token from settings wins over the env
    api.credentials(HTTP_AUTHORIZATION="Bearer another-token")
    assert api.get("/sync/checksums/product/").status_code == 200
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "VERIFY_TOKEN": ""}
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("STRANGLER_SYNC_VERIFY_TOKEN")
        settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC}  # rebuilt without the env either
        refused = api.get("/sync/checksums/product/")
        assert refused.status_code == 403 and "VERIFY_TOKEN" in refused.json()["error"]["message"]
        assert [m.id for m in check_verify_token()] == ["strangler_sync.W001"]
        with pytest.raises(VerifyError, match="no verify token"):
            verify_aggregate(source="http://a", follower="http://b", aggregate="product")
