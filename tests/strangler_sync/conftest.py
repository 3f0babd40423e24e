"""Fixtures of the data-plane tests: a private broker namespace and ownership file per test."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests
from django.db import connection
from django.test import override_settings
from kombu import Queue
from rest_framework.test import APIClient

from monolith.catalog.models import Category, Product
from monolith.events import PRODUCT
from strangler_sync.broker import broker_connection
from strangler_sync.capture import capture_sql
from strangler_sync.conf import sync_settings
from strangler_sync.consumer import SyncConsumer
from strangler_sync.handlers import handler_get, handler_unregister, sync_handler
from tests.waiting import WAIT_TIMEOUT


@pytest.fixture
def swap_handler():
    """swap(event_type, fn): replace the project's handler (None: no handler) for one test, restored after."""
    saved = {}

    def swap(event_type: str, fn) -> None:
        if event_type not in saved:
            saved[event_type] = handler_get(event_type=event_type)
        handler_unregister(event_type=event_type)
        if fn is not None:
            sync_handler(event_type)(fn)

    yield swap
    for event_type, fn in saved.items():
        handler_unregister(event_type=event_type)
        if fn is not None:
            sync_handler(event_type)(fn)


EXPLICIT_PRODUCT = "tests.strangler_sync.conftest.PRODUCT_EXPLICIT"
PRODUCT_EXPLICIT = PRODUCT.bind(capture="explicit")


@pytest.fixture
def explicit_product(settings):
    """The storefront's product as an explicitly published aggregate for one test (declared explicit, its
    capture triggers removed): the tests of event_publish, the relay and the consumer publish product events
    by hand. The removal rolls back with the test's transaction; after a transaction=True test the triggers
    are installed again."""
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "AGGREGATES": [
        EXPLICIT_PRODUCT if name == "monolith.events.PRODUCT" else name
        for name in settings.STRANGLER_SYNC["AGGREGATES"]]}
    install, remove = capture_sql(config=PRODUCT, origin="monolith", vendor=connection.vendor)
    in_test_transaction = connection.in_atomic_block
    with connection.cursor() as cursor:
        for statement in remove:
            cursor.execute(statement)
    yield
    if not in_test_transaction:
        with connection.cursor() as cursor:
            for statement in install:
                cursor.execute(statement)


def filesystem_options(folder) -> dict:
    for name in ("queue", "processed", "control"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
        "polling_interval": 0.02,
    }


@pytest.fixture(autouse=True)
def sync_env(settings, tmp_path):
    """The embedded default broker (SQLite queue) in tmp_path, a unique namespace, a private ownership file,
    no Celery trigger."""
    namespace = "t" + uuid.uuid4().hex[:10]
    settings.STRANGLER_SYNC = {
        **settings.STRANGLER_SYNC,
        "NAMESPACE": namespace,
        "BROKER_URL": "sqlite-queue://",
        "BROKER_TRANSPORT_OPTIONS": {"database": str(tmp_path / "broker.sqlite3"), "polling_interval": 0.02},
        "OWNERSHIP_FILE": str(tmp_path / "ownership.json"),
        "RELAY_TRIGGER": "none",
        "BACKOFF_BASE": 0.0,
    }
    return settings


@pytest.fixture
def on_rabbitmq(settings, rabbitmq_url):
    """Switch the data plane to the real RabbitMQ (publisher confirms); deletes the test's queues afterwards."""
    settings.STRANGLER_SYNC = {
        **settings.STRANGLER_SYNC,
        "BROKER_URL": rabbitmq_url,
        "BROKER_TRANSPORT_OPTIONS": {"confirm_publish": True},
    }
    yield settings
    config = sync_settings()
    try:
        with broker_connection() as connection:
            channel = connection.channel()
            for queue in [*config.subscribers, config.queue, config.dead_letter_queue]:
                channel.queue_delete(queue)
            channel.exchange_delete(config.exchange)
    except Exception:  # best effort: the broker may be what a test broke
        pass


def drain_queue(name: str, *, timeout: float = 0.5) -> list:
    """Every message currently in a queue (acked), as raw kombu messages (malformed bodies included)."""
    received = []

    def keep(message):
        message.ack()
        received.append(message)

    with broker_connection() as connection:
        queue = Queue(name, durable=True)
        held = queue(connection.default_channel).queue_declare(passive=True).message_count
        deadline = time.monotonic() + WAIT_TIMEOUT
        with connection.Consumer(queue, on_message=keep, accept=["json"]):
            while True:
                try:
                    connection.drain_events(timeout=timeout)
                except TimeoutError:
                    # Quiet for `timeout`: done once every message the queue held has come (a broker on a
                    # loaded machine can pause longer than that between two deliveries).
                    if len(received) >= held or time.monotonic() > deadline:
                        break
    return received


def envelopes_of(messages: list) -> list[tuple[dict, object]]:
    """(envelope, message) for every event the messages carry: a body is one envelope or an array of them."""
    return [(envelope, message) for message in messages
            for envelope in (message.payload if isinstance(message.payload, list) else [message.payload])]


T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def product_payload(product_id: int, **changes) -> dict:
    payload = {
        "id": product_id, "sku": f"SKU-{product_id}", "slug": f"product-{product_id}", "name": f"Product {product_id}",
        "description": "", "price": "10.00", "currency": "USD", "is_active": True, "category_id": None,
        "images": [], "created_at": T0.isoformat(), "updated_at": T0.isoformat(),
    }
    payload.update(changes)
    return payload


def make_product(product_id: int | None = None, **fields) -> Product:
    n = product_id or Product.objects.count() + 1
    values = {"sku": f"SKU-{n}", "slug": f"product-{n}", "name": f"Product {n}", "price": Decimal("10.00")}
    values.update(fields)
    if product_id is not None:
        values["id"] = product_id
    return Product.objects.create(**values)


def make_category(name: str = "Tools") -> Category:
    return Category.objects.create(name=name, slug=name.lower())


class ChecksumSession:
    """A requests-like session for ``verify_aggregate`` answering from this test's database through the real
    checksum view (``http://<side>/sync/...``), optionally under one side's settings or rewriting the follower's
    answers. Use it with ``verify._both`` made sequential: the test's rows are only visible to its connection."""

    def __init__(self, rewrite=None, *, side_settings: dict[str, dict] | None = None):
        self.api, self.rewrite, self.side_settings = APIClient(), rewrite, side_settings or {}
        self.headers: dict[str, str] = {}  # what verify_aggregate sets (its token) goes to the view

    def get(self, url, params=None, timeout=None):
        base, path = url.split("/sync/", 1)
        side = base.rsplit("/", 1)[-1]
        with override_settings(**self.side_settings.get(side, {})):
            answer = self.api.get("/sync/" + path, params or {},
                                  **({"HTTP_AUTHORIZATION": self.headers["Authorization"]}
                                     if "Authorization" in self.headers else {}))
        response = requests.Response()
        response.status_code = answer.status_code
        data = answer.json()
        if self.rewrite and side == "follower":
            data = self.rewrite(data)
        response._content = json.dumps(data).encode()
        return response


def consume_all() -> SyncConsumer:
    """Apply everything in this project's queue (STRANGLER_SYNC["QUEUE"]) until it stays empty for 0.4 s."""
    with broker_connection() as connection:
        consumer = SyncConsumer(connection)
        consumer.drain(idle_seconds=0.4)
    return consumer
