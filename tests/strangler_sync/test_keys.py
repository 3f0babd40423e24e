"""UUID- and str-keyed aggregates end to end: backfill and live events through outbox -> relay -> consumer,
verify finds 0 differences, then finds drift on the follower (changed, missing, extra) and repairs it.

Both sides live in this test's database (the keyed test app: owner models and differently named follower
copies); each side is this project under its own STRANGLER_SYNC (its aggregate bindings, queue, origin).
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection, transaction
from django.test import override_settings

from strangler_sync import verify
from strangler_sync.backfill import backfill_run
from strangler_sync.checksums import KEY_POSITIONS, aggregate_stats
from strangler_sync.relay import relay_run
from strangler_sync.services import aggregate_reemit, event_publish
from strangler_sync.snapshots import aggregate_payload
from strangler_sync.verify import verify_aggregate
from tests.strangler_sync.conftest import ChecksumSession, consume_all
from tests.strangler_sync.keyed.events import LABEL, LABEL_COPY, TICKET, TICKET_COPY

pytestmark = pytest.mark.django_db(transaction=True)

LABEL_CODES = ["a", "B-2", "x,y", "ünï/😀", "0042", "42"]  # a comma, non-ASCII, numeric-looking text


@pytest.fixture
def keyed_app(settings):
    with override_settings(INSTALLED_APPS=[*settings.INSTALLED_APPS, "tests.strangler_sync.keyed.apps.KeyedConfig"]):
        from tests.strangler_sync.keyed import models

        created = [models.Ticket, models.TicketCopy, models.Label, models.LabelCopy]
        with connection.schema_editor() as editor:
            for model in created:
                editor.create_model(model)
        try:
            yield models
        finally:
            with connection.schema_editor() as editor:
                for model in created:
                    editor.delete_model(model)


@pytest.fixture
def sides(settings, keyed_app, swap_handler):
    """(owner settings, follower settings); the follower's handlers write the copies."""
    base = settings.STRANGLER_SYNC
    owner = {"STRANGLER_SYNC": {**base, "ORIGIN": "owner", "DEFAULT_OWNER": "owner", "AGGREGATES": [TICKET, LABEL],
                                "SUBSCRIBERS": {"sync.follower": ["ticket.*", "label.*"]}}}
    follower = {"STRANGLER_SYNC": {**base, "ORIGIN": "follower", "AGGREGATES": [TICKET_COPY, LABEL_COPY],
                                   "QUEUE": "sync.follower", "SUBSCRIPTIONS": ["ticket.*", "label.*"]}}

    def ticket_upsert(*, event):
        values = {"heading": event.payload["title"], "seats": event.payload["seats"]}
        keyed_app.TicketCopy.objects.update_or_create(ticket_id=event.aggregate_key, defaults=values)

    def ticket_delete(*, event):
        keyed_app.TicketCopy.objects.filter(ticket_id=event.aggregate_key).delete()

    def label_upsert(*, event):
        keyed_app.LabelCopy.objects.update_or_create(code=event.aggregate_key, defaults={"name": event.payload["name"]})

    def label_delete(*, event):
        keyed_app.LabelCopy.objects.filter(code=event.aggregate_key).delete()

    for aggregate, upsert, delete in ((TICKET, ticket_upsert, ticket_delete), (LABEL, label_upsert, label_delete)):
        for action in ("created", "updated", "snapshot"):
            swap_handler(aggregate.event(action), upsert)
        swap_handler(aggregate.event("deleted"), delete)
    return owner, follower


def _publish_and_apply(owner: dict, follower: dict) -> None:
    with override_settings(**owner):
        while relay_run(once=True):
            pass
    with override_settings(**follower):
        consume_all()


def test_uuid_and_text_keys_sync_verify_and_repair(sides, keyed_app, monkeypatch):
    owner, follower = sides
    # one side after the other in this thread: the test's rows are only visible to its own connection
    monkeypatch.setattr(verify, "_both", lambda src, fol, **params: (src.get(**params), fol.get(**params)))
    session = ChecksumSession(side_settings={"owner": owner, "follower": follower})

    def verified(aggregate: str):
        return verify_aggregate(source="http://owner", follower="http://follower", aggregate=aggregate,
                                buckets=8, session=session)

    with override_settings(**owner):
        tickets = [keyed_app.Ticket.objects.create(title=f"t{i}", seats=i) for i in range(30)]
        for code in LABEL_CODES:
            keyed_app.Label.objects.create(code=code, name=f"label {code}")
        assert backfill_run(aggregate_type="ticket", batch_size=7).emitted == 30
        assert backfill_run(aggregate_type="label", batch_size=4).emitted == len(LABEL_CODES)
        with transaction.atomic():  # a live write after the backfill
            tickets[0].title = "renamed"
            tickets[0].save()
            event_publish(event_type=TICKET.event("updated"), aggregate_type="ticket", aggregate_id=tickets[0].id,
                          payload=aggregate_payload(aggregate_type="ticket", instance=tickets[0]))
        stats = aggregate_stats(aggregate_type="ticket")
        assert (stats["keys"], stats["count"], stats["max_id"]) == ("hash", 30, KEY_POSITIONS - 1)
    _publish_and_apply(owner, follower)

    assert keyed_app.TicketCopy.objects.get(ticket_id=tickets[0].id).heading == "renamed"
    for aggregate, rows in (("ticket", 30), ("label", len(LABEL_CODES))):
        result = verified(aggregate)
        assert (result.differences, result.source_count, result.follower_count) == (0, rows, rows), result

    # drift on the follower: one row changed, one gone, one that the owner never had
    keyed_app.TicketCopy.objects.filter(ticket_id=tickets[1].id).update(seats=99)
    keyed_app.TicketCopy.objects.filter(ticket_id=tickets[2].id).delete()
    stray = keyed_app.TicketCopy.objects.create(ticket_id=uuid.uuid4(), heading="stray", seats=1)
    keyed_app.LabelCopy.objects.filter(code="x,y").update(name="drifted")
    keyed_app.LabelCopy.objects.filter(code="0042").delete()

    tickets_diff, labels_diff = verified("ticket"), verified("label")
    assert (tickets_diff.changed, tickets_diff.missing, tickets_diff.extra) == (
        [str(tickets[1].id)], [str(tickets[2].id)], [str(stray.ticket_id)])
    assert (labels_diff.changed, labels_diff.missing, labels_diff.extra) == (["x,y"], ["0042"], [])

    with override_settings(**owner):
        for aggregate, result in (("ticket", tickets_diff), ("label", labels_diff)):
            counts = aggregate_reemit(aggregate_type=aggregate, ids=result.missing + result.extra + result.changed)
            assert counts["skipped"] == 0
    _publish_and_apply(owner, follower)

    for aggregate in ("ticket", "label"):
        assert verified(aggregate).differences == 0
    assert not keyed_app.TicketCopy.objects.filter(ticket_id=stray.ticket_id).exists()
    assert keyed_app.LabelCopy.objects.get(code="x,y").name == "label x,y"
