"""JSON Schema of the route file, generated from the typed specs (strangler_proxy.spec) and the loader's rules.

Every key and its type and default come from the spec dataclasses' fields; the bounds and patterns come from
the loader's public rules (VALUE_PATTERNS, SETTING_LIMITS), so the schema cannot say something the loader does
not. The loader stays the authority (it also checks cross-references: a route's service must be an upstream);
the schema is for editors and CI. `strangler-proxy schema` prints it; the committed copy is
strangler_proxy/route-file.schema.json (tests/test_file_schemas.py fails when it drifts).
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from pathlib import Path
from typing import Any

from strangler_proxy.loader import SETTING_LIMITS, VALUE_PATTERNS
from strangler_proxy.spec import (
    ACCESS_LOG_MODES,
    DiffRules,
    IdentitySettings,
    NoiseSettings,
    OverrideSpec,
    ProxySettings,
    ReadYourWritesSettings,
    Route,
    ShadowSpec,
    StickySpec,
    Upstream,
)

ROUTE_FILE_SCHEMA_PATH = Path(__file__).resolve().parent / "route-file.schema.json"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_pattern(pattern: re.Pattern) -> dict[str, str]:
    """A loader regex as a JSON Schema `pattern` (the loader's patterns use only what ECMA 262 shares)."""
    return {"pattern": pattern.pattern}


def annotation_schema(annotation: Any) -> dict[str, Any]:
    """The JSON Schema of a spec field's type: str, bool, int, float, Literal, X | None, tuple/frozenset[str]."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is str or annotation is Path:  # a path in a file is a string
        return {"type": "string", "minLength": 1}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        # `X | None` in a spec means the key may be left out; a key that may also be null says so in `refine`
        options = [annotation_schema(arg) for arg in args if arg is not type(None)]
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin in (tuple, frozenset):
        return {"type": "array", "items": annotation_schema(args[0])}
    if dataclasses.is_dataclass(annotation):
        return dataclass_schema(annotation)
    raise TypeError(f"no JSON Schema for the spec type {annotation!r}")


def dataclass_schema(cls: type, *, skip: tuple[str, ...] = (), refine: dict[str, dict] | None = None,
                     required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A closed object schema with one property per field of the spec dataclass `cls` (minus `skip`).

    A property's type comes from the field's annotation and its default from the field's default; `refine`
    adds keywords to a property (bounds, patterns) by field name, or replaces its schema when it gives the
    property's type itself (`type`, `enum`, `anyOf` or `$ref`).
    """
    hints = typing.get_type_hints(cls)
    refine = refine or {}
    properties: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        given = refine.get(field.name, {})
        schema = {} if _REPLACING.intersection(given) else annotation_schema(hints[field.name])
        schema.update(given)
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if default not in (dataclasses.MISSING, None) and not dataclasses.is_dataclass(default):
            schema["default"] = list(default) if isinstance(default, tuple | frozenset) else default
        properties[field.name] = schema
    out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties}
    if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):
        out["description"] = " ".join(cls.__doc__.strip().split("\n\n")[0].split())  # the first paragraph
    if required:
        out["required"] = list(required)
    return out


_REPLACING = frozenset({"type", "enum", "anyOf", "$ref"})


def _limit(name: str) -> dict[str, Any]:
    low, high, integer = SETTING_LIMITS[name]
    return {"type": "integer" if integer else "number", "minimum": low, "maximum": high}


def _route_schema() -> dict[str, Any]:
    path = json_pattern(VALUE_PATTERNS["path"])
    route = dataclass_schema(Route, skip=("line",), refine={
        "prefix": {**path, "description": "matches paths starting with this (match: prefix) or equal to it "
                                          "(match: exact)"},
        "match": {"enum": ["prefix", "exact"]},
        "methods": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^[A-Za-z]+$"}},
        "service": {"type": "string", **json_pattern(VALUE_PATTERNS["name"])},
        "weight": {"minimum": 0, "maximum": 100},
        "shadow": {"$ref": "#/$defs/shadow"},
        "timeout": {"minimum": 0.001, "maximum": 3600},
        "diff": {"$ref": "#/$defs/diff"},
        "hold": {"enum": ["reject", "queue", None], "description": "hold writes on these paths (ownership flip): "
                 "503 + Retry-After, or queue briefly (mitmproxy plane)"},
    })
    properties = route["properties"]
    properties["path"] = {"type": "string", **path, "description": "an exact path (same as prefix + match: exact)"}
    properties["pattern"] = {"type": "string", **path, "description": "a prefix where each `*` segment stands for "
                                                                      "one non-empty segment: /api/items/*/notes/"}
    route["oneOf"] = [{"required": [key]} for key in ("prefix", "path", "pattern")]
    route["allOf"] = [
        {"if": {"required": ["pattern"]}, "then": {"not": {"required": ["match"]}}},
        {"if": {"required": ["mode"], "properties": {"mode": {"not": {"const": "monolith"}}}},
         "then": {"required": ["service"]}},
        {"if": {"required": ["mode"], "properties": {"mode": {"const": "canary"}}},
         "then": {"required": ["weight"]}, "else": {"not": {"required": ["weight"]}}},
    ]
    return route


def route_file_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a route file."""
    upstream = dataclass_schema(Upstream, required=("url",), refine={
        "url": {"pattern": r"^http://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}/?$",
                "description": "http://host:port, no path"},
        "health_path": json_pattern(VALUE_PATTERNS["path"]),
    })
    upstream["properties"]["health_path"].pop("default")  # the default is settings.health_path
    settings = dataclass_schema(ProxySettings, refine={
        "diff_endpoint": json_pattern(VALUE_PATTERNS["host_port"]),
        "access_log": {"enum": list(ACCESS_LOG_MODES)},
        "health_path": json_pattern(VALUE_PATTERNS["path"]),
        "noise": {"$ref": "#/$defs/noise"},
        "read_your_writes": {"$ref": "#/$defs/read_your_writes"},
        "identity": {"$ref": "#/$defs/identity"},
        **{name: _limit(name) for name in SETTING_LIMITS},
    })
    identity = dataclass_schema(IdentitySettings, refine={
        "upstreams": {"items": {"type": "string", **json_pattern(VALUE_PATTERNS["name"])}},
        "endpoint": json_pattern(VALUE_PATTERNS["path"]),
        "header": json_pattern(VALUE_PATTERNS["header"]),
        "cookies": {"items": {"type": "string", **json_pattern(VALUE_PATTERNS["cookie"])}},
        "timeout": {"minimum": 0.001, "maximum": 300},
        "cache_ttl": {"minimum": 0, "maximum": 3600},
        "cache_size": {"minimum": 1, "maximum": 10**7},
    })
    noise = dataclass_schema(NoiseSettings, refine={
        "expiry": {"type": "integer", "minimum": 1, "maximum": 10 * 365 * 86400},
        "generalise_after": {"minimum": 2, "maximum": 10**6},
        "min_evidence": {"minimum": 1, "maximum": 10**6},
    })
    noise["properties"]["expiry"]["default"] = int(NoiseSettings.expiry)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": "https://strangler-fig.invalid/schemas/route-file.schema.json",
        "title": "strangler_proxy route file",
        "description": "Upstreams and routes both traffic planes take their decisions from "
                       "(check a file with `strangler-proxy check`).",
        "type": "object",
        "additionalProperties": False,
        "required": ["upstreams", "monolith"],
        "properties": {
            "upstreams": {
                "type": "object", "minProperties": 1,
                "propertyNames": json_pattern(VALUE_PATTERNS["name"]),
                "additionalProperties": {"anyOf": [upstream["properties"]["url"] | {"type": "string"}, upstream]},
            },
            "monolith": {"type": "string", **json_pattern(VALUE_PATTERNS["name"]),
                         "description": "the name of the monolith's upstream"},
            "routes": {"type": "array", "items": {"$ref": "#/$defs/route"}},
            "sticky": dataclass_schema(StickySpec, refine={
                "cookie": json_pattern(VALUE_PATTERNS["cookie"]),
                "header": {"anyOf": [{"type": "string", **json_pattern(VALUE_PATTERNS["header"])},
                                     {"type": "null"}]},
            }),
            "override": dataclass_schema(OverrideSpec, refine={
                "header": json_pattern(VALUE_PATTERNS["header"]),
                "secret_env": {"pattern": "^[A-Z_][A-Z0-9_]*$"},
            }),
            "settings": {"$ref": "#/$defs/settings"},
        },
        "$defs": {
            "route": _route_schema(),
            "shadow": dataclass_schema(ShadowSpec, refine={
                "sample": {"minimum": 0, "maximum": 1},
                "target": {"type": "string", **json_pattern(VALUE_PATTERNS["name"])},
            }),
            "diff": dataclass_schema(DiffRules, refine={
                "ignore": {"items": {"type": "string", "pattern": r"^\$"}},
                "unordered": {"items": {"type": "string", "pattern": r"^\$"}},
            }),
            "settings": settings,
            "noise": noise,
            "read_your_writes": dataclass_schema(ReadYourWritesSettings, refine={
                "cookie": json_pattern(VALUE_PATTERNS["cookie"]),
                "max_age": {"minimum": 1, "maximum": 3600},
                "window": {"minimum": 1, "maximum": 3600},
                "secret_env": {"pattern": "^[A-Z_][A-Z0-9_]*$"},
            }),
            "identity": identity,
        },
    }


def schema_text(schema: dict[str, Any]) -> str:
    """The schema as committed: sorted keys, two-space indent, trailing newline (stable diffs)."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
