"""Ownership: monolith by default, one file flips it (atomically), refusals are 409 not_owner."""

from __future__ import annotations

import json
import os

import pytest
from django.core.management import call_command

from servicekit.errors import api_exception_handler
from strangler_sync.conf import sync_settings
from strangler_sync.errors import NotOwner
from strangler_sync.ownership import (
    ownership_is_owner,
    ownership_map,
    ownership_owner_get,
    ownership_require_owner,
    ownership_set,
)


def test_the_monolith_owns_everything_by_default():
    assert not sync_settings().ownership_file.exists()
    assert ownership_owner_get(aggregate_type="product") == "monolith"
    ownership_require_owner(aggregate_type="product")  # no error


def test_a_flip_refuses_writes_with_409_not_owner():
    ownership_set(aggregate_type="product", owner="catalog")
    with pytest.raises(NotOwner) as caught:
        ownership_require_owner(aggregate_type="product")
    response = api_exception_handler(caught.value, {})
    assert response.status_code == 409
    assert response.data["error"]["code"] == "not_owner"
    assert response.data["error"]["details"] == {"aggregate": "product", "owner": "catalog", "project": "monolith"}
    ownership_require_owner(aggregate_type="category")  # others untouched
    assert ownership_is_owner(aggregate_type="product", project="catalog")


def test_file_changes_by_other_processes_are_seen(settings):
    path = sync_settings().ownership_file
    ownership_set(aggregate_type="product", owner="catalog")
    assert ownership_owner_get(aggregate_type="product") == "catalog"
    # another process rewrites the file (same size, so only mtime/inode tell)
    path.write_text(json.dumps({"owners": {"product": "monolit"}}))
    os.utime(path, ns=(1, 1))
    assert ownership_owner_get(aggregate_type="product") == "monolit"


def test_writes_are_atomic_and_keep_other_entries(tmp_path):
    ownership_set(aggregate_type="product", owner="catalog")
    ownership_set(aggregate_type="review", owner="reviews")
    ownership_set(aggregate_type="product", owner="monolith")
    path = sync_settings().ownership_file
    assert json.loads(path.read_text()) == {"owners": {"product": "monolith", "review": "reviews"}}
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".ownership")] == []  # no temp files


def test_yaml_file(settings, tmp_path):
    path = tmp_path / "owners.yaml"
    path.write_text("owners:\n  stock: inventory\n")
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "OWNERSHIP_FILE": str(path)}
    assert ownership_map() == {"stock": "inventory"}
    ownership_set(aggregate_type="product", owner="catalog")
    assert "product: catalog" in path.read_text()


def test_command_sets_and_prints(capsys):
    call_command("sync_ownership", "--set", "product=catalog")
    out = capsys.readouterr().out
    assert "product: catalog" in out
    assert ownership_owner_get(aggregate_type="product") == "catalog"
