"""ReadYourWritesMiddleware on a project: a write says the versions it emitted; a read asking for versions is
answered only once they are applied (409 behind, without running the view, until then)."""

from __future__ import annotations

import pytest

from servicekit.write_positions import READ_AFTER_HEADER, WRITTEN_HEADER, positions_parse
from strangler_sync.models import AppliedVersion, OutboxEvent


@pytest.mark.django_db(transaction=True)  # the positions count once the write commits (on_commit)
def test_a_write_answers_with_the_versions_it_emitted(staff_api, shelf):
    lamp = shelf["lamp"]
    response = staff_api.patch(f"/api/products/{lamp.id}/", {"price": "11.00"}, format="json")
    assert response.status_code == 200
    row = OutboxEvent.objects.filter(aggregate_type="product", aggregate_id=str(lamp.id)).latest("id")
    assert positions_parse(response[WRITTEN_HEADER]) == [("product", str(lamp.id), row.version)]


@pytest.mark.django_db(transaction=True)
def test_a_write_that_emits_nothing_says_nothing(staff_api, shelf):
    response = staff_api.patch(f"/api/products/{shelf['lamp'].id}/", {"price": "not a price"}, format="json")
    assert response.status_code == 400
    assert WRITTEN_HEADER not in response


@pytest.mark.django_db
def test_a_read_waits_for_the_versions_it_asks_for(api, shelf):
    lamp = shelf["lamp"]
    asked = {f"HTTP_{READ_AFTER_HEADER.upper().replace('-', '_')}": f"product:{lamp.id}:3"}
    behind = api.get(f"/api/products/{lamp.id}/", **asked)
    assert behind.status_code == 409 and behind[READ_AFTER_HEADER] == "behind"
    assert behind.json()["error"]["code"] == "not_caught_up"
    AppliedVersion.objects.create(aggregate_type="product", aggregate_id=str(lamp.id), version=2)
    assert api.get(f"/api/products/{lamp.id}/", **asked).status_code == 409
    AppliedVersion.objects.filter(aggregate_type="product").update(version=3)
    fresh = api.get(f"/api/products/{lamp.id}/", **asked)
    assert fresh.status_code == 200 and fresh[READ_AFTER_HEADER] == "ok"
    assert fresh.json()["id"] == lamp.id
    plain = api.get(f"/api/products/{lamp.id}/")  # no positions asked: nothing checked, nothing said
    assert plain.status_code == 200 and READ_AFTER_HEADER not in plain


@pytest.mark.django_db
def test_positions_of_aggregates_the_project_does_not_follow_are_not_waited_for(api, shelf):
    key = f"HTTP_{READ_AFTER_HEADER.upper().replace('-', '_')}"
    assert api.get("/api/products/", **{key: "nothing-followed:1:9"}).status_code == 200
    refused = api.get("/api/products/", **{key: "product:1"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_read_after"
