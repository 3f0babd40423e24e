"""The breaking-change finder used by the contract test must see every kind of break (and nothing else)."""

from __future__ import annotations

import copy

from tests.extracted.catalog.openapi_diff import contract_breaks

BASE = {
    "openapi": "3.0.3",
    "paths": {
        "/api/things/": {
            "get": {
                "parameters": [
                    {"in": "query", "name": "q", "schema": {"type": "string"}},
                    {"in": "query", "name": "page", "schema": {"type": "integer"}},
                ],
                "responses": {
                    "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Page"}}}},
                    "400": {"description": "bad filter"},
                },
            },
            "post": {
                "requestBody": {"content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/ThingRequest"}}}, "required": True},
                "responses": {"201": {"content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/Thing"}}}}},
            },
        },
        "/api/other/": {"get": {"responses": {"200": {"description": "not compared"}}}},
    },
    "components": {"schemas": {
        "Page": {"type": "object", "required": ["count", "results"], "properties": {
            "count": {"type": "integer"},
            "next": {"type": "string", "format": "uri", "nullable": True},
            "results": {"type": "array", "items": {"$ref": "#/components/schemas/Thing"}},
        }},
        "Thing": {"type": "object", "required": ["id", "price"], "properties": {
            "id": {"type": "integer", "readOnly": True},
            "price": {"type": "string", "format": "decimal"},
            "parent": {"allOf": [{"$ref": "#/components/schemas/Ref"}], "nullable": True},
            "kind": {"oneOf": [{"$ref": "#/components/schemas/KindEnum"}, {"$ref": "#/components/schemas/NullEnum"}]},
            "tags": {"type": "array", "items": {"type": "string"}},
        }},
        "Ref": {"type": "integer"},
        "KindEnum": {"enum": ["a", "b"], "type": "string"},
        "NullEnum": {"enum": [None]},
        "ThingRequest": {"type": "object", "required": ["price"], "properties": {
            "price": {"type": "string", "format": "decimal"},
            "note": {"type": "string"},
        }},
    }},
}  # fmt: skip


def changed(edit) -> list[str]:
    new = copy.deepcopy(BASE)
    edit(new)
    return contract_breaks(old_doc=BASE, new_doc=new, path_prefixes=["/api/things/"])


def test_identical_documents_have_no_breaks():
    assert changed(lambda doc: None) == []


def test_additions_and_unrelated_paths_are_not_breaks():
    def edit(doc):
        doc["components"]["schemas"]["Thing"]["properties"]["colour"] = {"type": "string"}
        doc["paths"]["/api/things/"]["get"]["responses"]["404"] = {"description": "new error code"}
        doc["paths"]["/api/things/"]["get"]["parameters"].append({"in": "query", "name": "x", "required": False})
        del doc["paths"]["/api/other/"]

    assert changed(edit) == []


def test_removed_response_field_nested_in_the_page_is_a_break():
    breaks = changed(lambda doc: doc["components"]["schemas"]["Thing"]["properties"].pop("price"))
    assert "GET /api/things/ 200 application/json $.results[*].price: field removed" in breaks
    assert "POST /api/things/ 201 application/json $.price: field removed" in breaks


def test_changed_types_are_breaks():
    def edit(doc):
        thing = doc["components"]["schemas"]["Thing"]["properties"]
        thing["price"] = {"type": "number", "format": "double"}
        thing["tags"]["items"] = {"type": "integer"}
        doc["components"]["schemas"]["Ref"] = {"type": "string"}
        doc["components"]["schemas"]["Page"]["properties"]["next"]["nullable"] = False

    breaks = "\n".join(changed(edit))
    assert "$.results[*].price: type changed from 'string' to 'number'" in breaks
    assert "$.results[*].price: format changed from 'decimal' to 'double'" in breaks
    assert "$.results[*].tags[*]: type changed from 'string' to 'integer'" in breaks
    assert "$.results[*].parent: type changed from 'integer' to 'string'" in breaks
    assert "$.next: nullable changed from True to False" in breaks


def test_enum_values_removed_are_breaks():
    breaks = changed(lambda doc: doc["components"]["schemas"]["KindEnum"].update(enum=["a"]))
    assert any("$.results[*].kind: enum changed" in b for b in breaks)


def test_status_codes_operations_and_parameters():
    def edit(doc):
        things = doc["paths"]["/api/things/"]
        things["post"]["responses"] = {"200": things["post"]["responses"].pop("201")}
        del things["get"]["responses"]["400"]
        things["get"]["parameters"] = [p for p in things["get"]["parameters"] if p["name"] != "q"]

    breaks = changed(edit)
    assert "POST /api/things/: success status changed from ['201'] to ['200']" in breaks
    assert "GET /api/things/: status 400 removed" in breaks
    assert "GET /api/things/: query parameter 'q' removed" in breaks
    assert changed(lambda doc: doc["paths"]["/api/things/"].pop("post")) == ["POST /api/things/: operation removed"]


def test_request_bodies_must_not_demand_more():
    def edit(doc):
        doc["components"]["schemas"]["ThingRequest"]["required"].append("note")

    assert changed(edit) == ["POST /api/things/ request application/json $.note: newly required input"]
    assert changed(lambda doc: doc["paths"]["/api/things/"]["post"].pop("requestBody")) == [
        "POST /api/things/: request body no longer accepted"
    ]
