"""The monolith's aggregate declarations and the extracted services' copy of them must agree: a field, key,
action or schema that differs makes a consumer dead-letter events, or verify report every row as changed."""

import pytest

from extracted import events as services_contract
from extracted.catalog import aggregates as catalog_aggregates
from extracted.inventory import aggregates as inventory_aggregates
from extracted.reviews import aggregates as reviews_aggregates
from monolith import events as monolith_contract

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
