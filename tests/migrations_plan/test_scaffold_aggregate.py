"""The scaffold's declaration as code: what it writes loads back as the same Aggregate (every key type,
nullable and multi-type fields, custom actions, renamed fields, several schema versions)."""

from __future__ import annotations

import uuid

import pytest

from migrations_plan.scaffold_aggregate import declaration_code
from monolith import events
from strangler_sync.aggregates import Aggregate, Schema

INVOICE = Aggregate(
    name="invoice", key="number", key_type=uuid.UUID, actions=("issued", "deleted"),
    schemas={1: Schema(required={"number": str, "lines": (dict, list, None)}),
             2: Schema(required={"number": str, "total": str}, optional={"paid": (bool, None), "rate": float})},
    model="billing_service.Invoice", fields={"number": "uuid", "total": "total"},
)
TAG = Aggregate(name="tag", key="slug", key_type=str, schemas={1: Schema(required={"slug": str})},
                model="tags_service.Tag", fields=["slug"])


@pytest.mark.parametrize("aggregate", [INVOICE, TAG, *(a.bind(snapshot=None) for a in (
    events.PRODUCT, events.CATEGORY, events.STOCK, events.REVIEW))], ids=lambda a: a.name)
def test_the_written_declaration_loads_back_as_the_same_aggregate(aggregate):
    code = declaration_code(const="DECLARED", aggregate=aggregate)
    namespace: dict = {}
    exec(compile("import uuid\nfrom strangler_sync.aggregates import Aggregate, Schema\n" + code, "<scaffold>", "exec"),
         namespace)
    assert namespace["DECLARED"] == aggregate
    assert all(len(line) <= 120 for line in code.splitlines())
