"""The route file and plan file JSON Schemas: committed copies match the generators, every file in the repo
validates, and invalid files are refused by both the loader and the schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from demo.stack import routes_file_ensure, stack_build
from migrations_plan.errors import PlanFileError
from migrations_plan.loader import parse_plan_text
from migrations_plan.schema import PLAN_FILE_SCHEMA_PATH, plan_file_schema
from strangler_proxy.loader import DEFAULT_ROUTE_FILE, RouteFileError, load_route_file, parse_route_text
from strangler_proxy.schema import ROUTE_FILE_SCHEMA_PATH, route_file_schema, schema_text

ROOT = Path(__file__).resolve().parent.parent
ROUTE_FILES = [ROOT / "strangler_proxy" / "routes.yaml", ROOT / "deploy" / "routes.yaml"]
PLAN_FILES = sorted((ROOT / "migrations_plan" / "plans").glob("*.yaml"))


def _validator(schema: dict) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(schema: dict, document) -> list[str]:
    return [f"{error.json_path}: {error.message}" for error in _validator(schema).iter_errors(document)]


@pytest.mark.parametrize(("path", "generate"), [(ROUTE_FILE_SCHEMA_PATH, route_file_schema),
                                                (PLAN_FILE_SCHEMA_PATH, plan_file_schema)])
def test_committed_schema_is_what_the_generator_makes(path, generate):
    assert path.read_text(encoding="utf-8") == schema_text(generate()), (
        f"{path.name} is stale: regenerate it with `strangler-proxy schema --out` / `strangler-plan schema --out`")


@pytest.mark.parametrize("command", [["strangler_proxy.cli", "schema"], ["migrations_plan.cli", "schema"]])
def test_cli_prints_the_committed_schema(command):
    done = subprocess.run([sys.executable, "-c", f"import sys; from {command[0]} import main; sys.exit(main())",
                           *command[1:]], capture_output=True, text=True, timeout=120, check=True)
    committed = ROUTE_FILE_SCHEMA_PATH if command[0].startswith("strangler_proxy") else PLAN_FILE_SCHEMA_PATH
    assert json.loads(done.stdout) == json.loads(committed.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", ROUTE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_repo_route_files_validate(path):
    load_route_file(path)  # the loader accepts it, and so must the schema
    assert _errors(route_file_schema(), yaml.safe_load(path.read_text())) == []


def test_demo_route_file_validates(tmp_path):
    stack = stack_build(var_dir=tmp_path)
    routes_file_ensure(stack)
    load_route_file(stack.routes_path)
    assert _errors(route_file_schema(), yaml.safe_load(stack.routes_path.read_text())) == []


@pytest.mark.parametrize("path", PLAN_FILES, ids=lambda p: p.name)
def test_repo_plan_files_validate(path):
    # The raw file, as an editor sees it: `${NAME:-default}` numbers are allowed by the schema.
    assert _errors(plan_file_schema(), yaml.safe_load(path.read_text())) == []


ROUTE_BASE = "upstreams:\n  monolith: http://127.0.0.1:8000\n  svc: http://127.0.0.1:8001\nmonolith: monolith\n"
BAD_ROUTE_FILES = {
    "unknown top key": ROUTE_BASE + "colour: blue\n",
    "unknown mode": ROUTE_BASE + "routes:\n  - {prefix: /a/, mode: sideways, service: svc}\n",
    "canary without weight": ROUTE_BASE + "routes:\n  - {prefix: /a/, mode: canary, service: svc}\n",
    "weight out of range": ROUTE_BASE + "routes:\n  - {prefix: /a/, mode: canary, service: svc, weight: 101}\n",
    "service mode without service": ROUTE_BASE + "routes:\n  - {prefix: /a/, mode: service}\n",
    "relative prefix": ROUTE_BASE + "routes:\n  - {prefix: a/}\n",
    "prefix and path": ROUTE_BASE + "routes:\n  - {prefix: /a/, path: /a/}\n",
    "url with a path": "upstreams:\n  monolith: http://127.0.0.1:8000/x\nmonolith: monolith\n",
    "bad upstream name": "upstreams:\n  Mono: http://127.0.0.1:8000\nmonolith: Mono\n",
    "limit too small": ROUTE_BASE + "settings:\n  max_header_bytes: 10\n",
    "no monolith": "upstreams:\n  monolith: http://127.0.0.1:8000\n",
}


@pytest.mark.parametrize("text", BAD_ROUTE_FILES.values(), ids=BAD_ROUTE_FILES.keys())
def test_invalid_route_files_are_refused_by_loader_and_schema(text):
    with pytest.raises(RouteFileError):
        parse_route_text(text, source="bad.yaml")
    assert _errors(route_file_schema(), yaml.safe_load(text)) != []


PLAN_BASE = ("plan: p\nservice: catalog\nroutes: [/api/products/]\nproxy_metrics: http://127.0.0.1:8081/metrics\n"
             "workdir: .\n")
BAD_PLAN_FILES = {
    "unknown top key": PLAN_BASE + "colour: blue\nsteps:\n  - {name: a, kind: deploy, gates: {healthy: [catalog]}}\n",
    "unknown step kind": PLAN_BASE + "steps:\n  - {name: a, kind: dance, gates: {healthy: [catalog]}}\n",
    "unknown gate": PLAN_BASE + "steps:\n  - {name: a, kind: deploy, gates: {vibes: 1}}\n",
    "rate above 1": PLAN_BASE + "steps:\n  - {name: a, kind: shadow, gates: {max_diff_rate: 2}}\n",
    "step without actions or gates": PLAN_BASE + "steps:\n  - {name: a, kind: deploy}\n",
    "two kinds of action": PLAN_BASE + "steps:\n  - name: a\n    kind: deploy\n    actions:\n"
                                       "      - {run: [x], ownership: {product: catalog}}\n",
    "no steps": PLAN_BASE + "steps: []\n",
    "bad plan name": PLAN_BASE.replace("plan: p", "plan: P!") + "steps:\n  - {name: a, kind: deploy, gates: "
                                                               "{healthy: [catalog]}}\n",
}


@pytest.mark.parametrize("text", BAD_PLAN_FILES.values(), ids=BAD_PLAN_FILES.keys())
def test_invalid_plan_files_are_refused_by_loader_and_schema(text, tmp_path):
    table = load_route_file(DEFAULT_ROUTE_FILE)
    good = PLAN_BASE + "steps:\n  - {name: a, kind: deploy, gates: {healthy: [catalog]}}\n"
    parse_plan_text(good, source=tmp_path / "good.yaml", table=table)  # the base is fine: the change is refused
    assert _errors(plan_file_schema(), yaml.safe_load(good)) == []
    with pytest.raises(PlanFileError):
        parse_plan_text(text, source=tmp_path / "bad.yaml", table=table)
    assert _errors(plan_file_schema(), yaml.safe_load(text)) != []
