"""strangler_sync/ownership-file.schema.json (its reference page is generated from it) says what the ownership seed
holds and what the readers take: both forms are checked here against the code, in JSON and YAML."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from strangler_sync.ownership import ownership_map

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "strangler_sync" / "ownership-file.schema.json")
                    .read_text(encoding="utf-8"))


def validate(data) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(data, SCHEMA)


@pytest.mark.django_db
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_seed_in_the_owners_form_validates_and_reads_back(suffix, settings, tmp_path):
    path = tmp_path / f"ownership{suffix}"
    data = {"owners": {"invoice": "billing"}}
    path.write_text(yaml.safe_dump(data) if suffix == ".yaml" else json.dumps(data))
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "OWNERSHIP_FILE": str(path)}
    validate(yaml.safe_load(path.read_text()))  # YAML is a superset of JSON: one parser for both
    assert ownership_map() == {"invoice": "billing"}


@pytest.mark.django_db
def test_a_bare_map_is_valid_and_read_the_same(settings, tmp_path):
    path = tmp_path / "ownership.json"
    path.write_text(json.dumps({"invoice": "billing"}))
    settings.STRANGLER_SYNC = {**settings.STRANGLER_SYNC, "OWNERSHIP_FILE": str(path)}
    validate({"invoice": "billing"})
    assert ownership_map() == {"invoice": "billing"}


@pytest.mark.parametrize("data", [{"owners": {"invoice": 3}}, {"owners": {"Invoice": "billing"}},
                                  {"owners": {"invoice": "billing"}, "extra": 1}, {"invoice": ""}])
def test_malformed_files_are_refused_by_the_schema(data):
    with pytest.raises(jsonschema.ValidationError):
        validate(data)
