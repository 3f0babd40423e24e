"""JSON Schema of the plan file, generated from the typed specs (migrations_plan.spec) and the loader's rules.

Keys, types and defaults come from the spec dataclasses (Plan, Step, CommandAction, Gate) and their tables
(GATE_KINDS, ROUTE_KEYS, STEP_KINDS); number fields also take a `${NAME:-default}` reference, which the loader
fills from the environment. The loader stays the authority (it checks routes and upstreams against the route
file); the schema is for editors and CI. `strangler-plan schema` prints it; the committed copy is
migrations_plan/plan-file.schema.json (tests/test_file_schemas.py fails when it drifts).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from migrations_plan.loader import STEP_KINDS
from migrations_plan.spec import GATE_KINDS, ROUTE_KEYS, CommandAction, Gate, Plan, Step
from strangler_proxy.schema import SCHEMA_DIALECT, dataclass_schema

PLAN_FILE_SCHEMA_PATH = Path(__file__).resolve().parent / "plan-file.schema.json"

NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,62}$"}
AGGREGATE = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$"}
ENV_REFERENCE = {"type": "string", "pattern": r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}$",
                 "description": "${NAME} or ${NAME:-default}, read from the environment"}
HTTP_URL = {"type": "string", "pattern": r"^(https?://|\$\{)"}


def number_or_env(low: float, high: float, *, integer: bool = False, above_low: bool = False) -> dict[str, Any]:
    bounds: dict[str, Any] = {"type": "integer" if integer else "number",
                              "exclusiveMinimum" if above_low else "minimum": low}
    if not math.isinf(high):
        bounds["maximum"] = high
    return {"anyOf": [bounds, ENV_REFERENCE]}


def _gate_values() -> dict[str, dict[str, Any]]:
    """The schema of each gate kind's value (the keys are GATE_KINDS; a kind without one here is refused)."""
    gate = dataclass_schema(Gate, refine={"schema_path": {"pattern": "^/"}})["properties"]
    values = {
        "verify": {"type": "array", "minItems": 1, "items": AGGREGATE},
        "healthy": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
        "coverage": {"type": "object", "additionalProperties": False, "properties": {
            "schema_path": gate["schema_path"], "recording": {"type": "string", "minLength": 1,
                                                              "description": "relative to the plan file"}}},
        "max_diff_rate": number_or_env(0, 1),
        "max_error_rate_increase": number_or_env(0, 1),
        "min_shadow_sample": number_or_env(0, math.inf, integer=True),
        "max_relay_backlog": number_or_env(0, math.inf, integer=True),
        "max_p99_seconds": number_or_env(0, 3600, above_low=True),
        "max_relay_lag_seconds": number_or_env(0, 30 * 86400),
        "min_soak_seconds": number_or_env(0, 30 * 86400),
        "max_reconcile_clean_age_seconds": number_or_env(1, 30 * 86400),
    }
    missing = set(GATE_KINDS) - set(values)
    if missing:  # a new gate kind must say what its value looks like
        raise LookupError(f"no schema for gate kinds {sorted(missing)}")
    return {kind: values[kind] | {"description": f"a {GATE_KINDS[kind]} gate"} for kind in GATE_KINDS}


def _actions() -> dict[str, Any]:
    run = dataclass_schema(CommandAction, skip=("line",), required=("run",), refine={
        "argv": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
                 "description": "argv; {python} is the control plane's interpreter"},
        "undo": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "timeout": number_or_env(0.001, 86400),
    })
    run["properties"]["run"] = run["properties"].pop("argv")
    run["properties"]["timeout"]["default"] = CommandAction.timeout
    route = {"type": "object", "additionalProperties": False, "required": ["route", "set"],
             "description": "set keys of one route of the route file (null removes a key)", "properties": {
                 "route": {"type": "string", "pattern": "^/"},
                 "set": {"type": "object", "minProperties": 1, "propertyNames": {"enum": list(ROUTE_KEYS)}}}}
    ownership = {"type": "object", "additionalProperties": False, "required": ["ownership"],
                 "description": "make a project the writer of each aggregate (not reversible)", "properties": {
                     "ownership": {"type": "object", "minProperties": 1, "propertyNames": AGGREGATE,
                                   "additionalProperties": AGGREGATE}}}
    return {"oneOf": [route, ownership, run]}


def plan_file_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a plan file."""
    plan = dataclass_schema(Plan, skip=("name", "source"), required=("plan", "service", "routes", "proxy_metrics",
                                                                       "steps"), refine={
        "service": NAME | {"description": "the upstream the plan moves traffic to"},
        "routes": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^/"}},
        "proxy_metrics": {"anyOf": [HTTP_URL, {"type": "array", "minItems": 1, "items": HTTP_URL},
                                    {"type": "object", "additionalProperties": False, "required": ["prometheus"],
                                     "properties": {"prometheus": HTTP_URL}}]},
        "sync_projects": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}},
        "workdir": {"type": "string", "minLength": 1, "description": "relative to the plan file"},
        "settings": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"},
        "route_file": {"type": "string", "minLength": 1, "description": "relative to the plan file"},
    })
    plan["properties"]["plan"] = NAME | {"description": "the plan's name"}
    step = dataclass_schema(Step, skip=("line",), required=("name", "kind"), refine={
        "name": NAME,
        "actions": {"type": "array", "items": {"$ref": "#/$defs/action"}},
        "gates": {"$ref": "#/$defs/gates"},
        "watch": {"$ref": "#/$defs/gates"},
    })
    step["properties"]["kind"] = {"enum": list(STEP_KINDS)}
    step["anyOf"] = [{"required": ["actions"]}, {"required": ["gates"]}]
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": "https://strangler-fig.invalid/schemas/plan-file.schema.json",
        "title": "migrations_plan plan file",
        "description": "The steps of one extraction, their actions and gates (check a file with "
                       "`strangler-plan check`).",
        **plan,
        "$defs": {
            "step": step,
            "action": _actions(),
            "gates": {"type": "object", "additionalProperties": False, "properties": _gate_values()},
        },
    }
