"""The monolith's aggregate declarations and the extracted services' copy of them must agree: a field, key,
action or schema that differs makes a consumer dead-letter events, or verify report every row as changed."""

import importlib.util
from pathlib import Path

import pytest

from extracted import events as services_contract
from monolith import events as monolith_contract

REPO = Path(__file__).resolve().parents[2]


def _service_module(service: str):
    """extracted/<service>/aggregates.py loaded on its own: importing the service's package would make its
    Celery app this process's current app (shared tasks such as the relay would then go to its broker)."""
    spec = importlib.util.spec_from_file_location(f"contract_{service}_aggregates",
                                                  REPO / "extracted" / service / "aggregates.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


catalog_aggregates, inventory_aggregates, reviews_aggregates = map(_service_module, ("catalog", "inventory", "reviews"))

SERVICE_BINDINGS = {
    "product": catalog_aggregates.PRODUCT,
    "category": catalog_aggregates.CATEGORY,
    "stock": inventory_aggregates.STOCK,
    "review": reviews_aggregates.REVIEW,
}


@pytest.mark.parametrize("name", sorted(SERVICE_BINDINGS))
def test_services_declare_the_monolith_s_contract(name):
    ours = getattr(monolith_contract, name.upper())
    theirs = getattr(services_contract, name.upper())
    bound = SERVICE_BINDINGS[name]
    for declared in (theirs, bound):
        assert (declared.name, declared.key, declared.key_type, declared.actions, declared.schemas) == (
            ours.name, ours.key, ours.key_type, ours.actions, ours.schemas)
    # verify hashes these canonical fields on both sides
    assert sorted(bound.fields) == sorted(ours.fields)
    assert bound.model != ours.model


def test_event_constants_are_the_same_names():
    names = [n for n in dir(monolith_contract) if n.isupper() and isinstance(getattr(monolith_contract, n), str)]
    assert len(names) == 14
    for name in names:
        assert getattr(services_contract, name) == getattr(monolith_contract, name)
