"""Parse a plan file (YAML) once into a Plan, refusing anything unknown or impossible with file, line and reason.

Values may use ``${NAME}`` / ``${NAME:-default}`` (environment variables), so one plan file serves the demo,
tests and production: URLs and soak times differ, the steps do not.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import yaml

from migrations_plan.errors import PlanFileError, PlanNotFound
from migrations_plan.gate_sources import PrometheusSource, ProxyMetricsSource
from migrations_plan.spec import (
    DEFAULT_SCHEMA_PATH,
    GATE_KINDS,
    ROUTE_KEYS,
    CommandAction,
    Gate,
    OwnershipChange,
    Plan,
    RouteEdit,
    Step,
)
from strangler_proxy.loader import ROUTES_ENV, RouteFileError, load_route_file
from strangler_proxy.spec import RouteTable

PLANS_DIR = Path(__file__).resolve().parent / "plans"
PLANS_DIR_ENV = "STRANGLER_PLANS_DIR"
# Where every plan's gates read proxy metrics in this deployment, whatever the plan file says: a URL, a YAML list of
# the replicas' URLs or {prometheus: URL} (e.g. the nginx plane's exporter and diff endpoint, or a Prometheus).
PROXY_METRICS_ENV = "STRANGLER_PROXY_METRICS"
STEP_KINDS = ("deploy", "backfill", "verify", "shadow", "canary", "cutover", "flip_ownership", "retire")

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_AGGREGATE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def plans_dir() -> Path:
    return Path(os.environ.get(PLANS_DIR_ENV) or PLANS_DIR)


def plan_path(name_or_path: str) -> Path:
    """A plan name (`catalog`) means plans_dir()/catalog.yaml; anything with a slash or suffix is a path."""
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        return Path(name_or_path)
    return plans_dir() / f"{name_or_path}.yaml"


def plan_names() -> list[str]:
    return sorted(p.stem for p in plans_dir().glob("*.yaml"))


def load_plan(name_or_path: str, *, routes: str | os.PathLike | None = None) -> Plan:
    path = plan_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        known = ", ".join(plan_names()) or "none"
        raise PlanNotFound(f"{path}: no such plan file (plans in {plans_dir()}: {known})") from None
    except OSError as exc:
        raise PlanNotFound(f"{path}: {exc.strerror or exc}") from exc
    try:
        table = load_route_file(routes or os.environ.get(ROUTES_ENV) or _named_route_file(text, path))
    except RouteFileError as exc:
        raise PlanFileError(str(path), 0, "routes", f"the route file is invalid: {exc}") from exc
    plan = parse_plan_text(text, source=path, table=table)
    from migrations_plan.state import state_load

    state = state_load(plan=plan.name)
    plan_route_edits_check(plan=plan, routes_text=Path(table.source).read_text(encoding="utf-8"),
                           routes_source=table.source, start=state.position if state else 0)
    return plan


def _named_route_file(text: str, path: Path) -> Path | None:
    """The plan's own `route_file` (relative to the plan file), read before the full parse needs the table."""
    try:
        data = yaml.safe_load(_interpolate(text, str(path)))
    except (yaml.YAMLError, PlanFileError):
        return None  # the full parse reports it with its line
    named = data.get("route_file") if isinstance(data, dict) else None
    return path.resolve().parent / named if isinstance(named, str) and named else None


def plan_route_edits_check(*, plan: Plan, routes_text: str, routes_source: str, start: int = 0) -> None:
    """Apply the route edits of every step not applied yet, in order, to a copy of the route file: each must load.

    Refuses at parse time a plan whose step would leave a route the proxy rejects (a canary without a
    weight, a weight outside canary mode), naming the plan's line rather than failing mid-migration.
    The route file reflects the steps already applied, so the walk starts at the plan's position.
    """
    from migrations_plan.errors import ActionFailed
    from migrations_plan.routefile import edit_route
    from strangler_proxy.loader import parse_route_text

    text = routes_text
    for index, step in enumerate(plan.steps):
        if index < start:
            continue
        for number, action in enumerate(step.actions):
            if not isinstance(action, RouteEdit):
                continue
            field = f"steps[{index}].actions[{number}]"
            try:
                text = edit_route(text, action.prefix, dict(action.changes), source=routes_source)
            except ActionFailed as exc:
                raise PlanFileError(str(plan.source), action.line, field, str(exc)) from exc
        try:
            parse_route_text(text, source=routes_source)
        except RouteFileError as exc:
            line = next((a.line for a in step.actions if isinstance(a, RouteEdit)), step.line)
            raise PlanFileError(str(plan.source), line, f"steps[{index}]",
                                f"step {step.name} would make the route file invalid: {exc.field}: {exc.message}"
                                ) from exc


def _interpolate(text: str, source: str) -> str:
    lines = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        def value(match: re.Match, number: int = number) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found:
                return found
            if default is None:
                raise PlanFileError(source, number, f"${{{name}}}", "environment variable is not set (no default)")
            return default

        lines.append(_ENV_REF.sub(value, line))
    return "".join(lines)


class _Reader:
    """Walks yaml.compose() nodes so every value keeps its line number."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, node: yaml.Node | None, field: str, message: str) -> PlanFileError:
        return PlanFileError(self.source, node.start_mark.line + 1 if node is not None else 1, field, message)

    def mapping(self, node: yaml.Node, field: str, allowed: set[str] | None) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, field, "must be a mapping")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            sub = f"{field}.{key}" if field else str(key)
            if not isinstance(key, str):
                raise self.fail(key_node, field or "file", "keys must be strings")
            if key in out:
                raise self.fail(key_node, sub, "duplicate key")
            if allowed is not None and key not in allowed:
                raise self.fail(key_node, sub, f"unknown key (allowed: {', '.join(sorted(allowed))})")
            out[key] = (key_node, value_node)
        return out

    def plain(self, node: yaml.Node) -> Any:
        return yaml.safe_load(yaml.serialize(node))

    def scalar(self, node: yaml.Node, field: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, field, "must be a single value")
        return self.plain(node)

    def string(self, node: yaml.Node, field: str, pattern: re.Pattern | None = None) -> str:
        value = self.scalar(node, field)
        if not isinstance(value, str) or not value:
            raise self.fail(node, field, "must be a non-empty string")
        if pattern is not None and not pattern.match(value):
            raise self.fail(node, field, f"invalid value {value!r}")
        return value

    def number(self, node: yaml.Node, field: str, low: float, high: float, *, integer: bool = False) -> float:
        value = self.scalar(node, field)
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
            raise self.fail(node, field, f"must be {kind}, got {value!r}")
        if math.isnan(value) or not low <= value <= high:
            upper = "" if math.isinf(high) else f"{high:g}"
            raise self.fail(node, field, f"impossible value {value!r}: must be {low:g}..{upper}")
        return value

    def strings(self, node: yaml.Node, field: str, pattern: re.Pattern | None = None) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, field, "must be a list")
        return tuple(self.string(item, f"{field}[{i}]", pattern) for i, item in enumerate(node.value))


def _route_of(r: _Reader, table: RouteTable, node: yaml.Node, field: str) -> str:
    prefix = r.string(node, field)
    matches = [route for route in table.routes if route.prefix == prefix]
    if not matches:
        known = ", ".join(route.prefix for route in table.routes) or "none"
        raise r.fail(node, field, f"unknown route {prefix!r} in {table.source} (routes: {known})")
    if len(matches) > 1:
        raise r.fail(node, field, f"route {prefix!r} is ambiguous in {table.source} (several method filters)")
    return prefix


def _action(r: _Reader, node: yaml.Node, field: str, table: RouteTable):
    items = r.mapping(node, field, {"route", "set", "ownership", "run", "undo", "timeout"})
    kinds = [k for k in ("route", "ownership", "run") if k in items]
    if len(kinds) != 1:
        raise r.fail(node, field, "an action is exactly one of: route (with set), ownership, run")
    line = node.start_mark.line + 1
    kind = kinds[0]
    allowed = {"route": {"route", "set"}, "ownership": {"ownership"}, "run": {"run", "undo", "timeout"}}
    extra = set(items) - allowed[kind]
    if extra:
        key = sorted(extra)[0]
        raise r.fail(items[key][0], f"{field}.{key}", f"not allowed in a {kind} action")
    if kind == "route":
        prefix = _route_of(r, table, items["route"][1], f"{field}.route")
        if "set" not in items:
            raise r.fail(node, f"{field}.set", "required (the route keys to change)")
        changes = []
        for key, (_key_node, value_node) in r.mapping(items["set"][1], f"{field}.set", set(ROUTE_KEYS)).items():
            value = r.plain(value_node)
            if key == "service" and value is not None and value not in table.upstreams:
                raise r.fail(value_node, f"{field}.set.service", f"unknown upstream {value!r}")
            changes.append((key, value))
        if not changes:
            raise r.fail(items["set"][1], f"{field}.set", "must change at least one key")
        return RouteEdit(prefix=prefix, changes=tuple(changes), line=line)
    if kind == "ownership":
        owners = []
        for aggregate, (key_node, value_node) in r.mapping(items["ownership"][1], f"{field}.ownership", None).items():
            if not _AGGREGATE.match(aggregate):
                raise r.fail(key_node, f"{field}.ownership", f"invalid aggregate name {aggregate!r}")
            owners.append((aggregate, r.string(value_node, f"{field}.ownership.{aggregate}", _AGGREGATE)))
        if not owners:
            raise r.fail(items["ownership"][1], f"{field}.ownership", "must name at least one aggregate")
        return OwnershipChange(owners=tuple(owners), line=line)
    argv = r.strings(items["run"][1], f"{field}.run")
    if not argv:
        raise r.fail(items["run"][1], f"{field}.run", "must not be empty")
    undo = r.strings(items["undo"][1], f"{field}.undo") if "undo" in items else None
    timeout = r.number(items["timeout"][1], f"{field}.timeout", 0.001, 86400) if "timeout" in items else 600.0
    return CommandAction(argv=argv, undo=undo or None, timeout=float(timeout), line=line)


def _gates(r: _Reader, node: yaml.Node, field: str, table: RouteTable) -> tuple[Gate, ...]:
    gates = []
    for kind, (key_node, value_node) in r.mapping(node, field, set(GATE_KINDS)).items():
        sub = f"{field}.{kind}"
        line = key_node.start_mark.line + 1
        if kind == "verify":
            aggregates = r.strings(value_node, sub, _AGGREGATE)
            if not aggregates:
                raise r.fail(value_node, sub, "must name at least one aggregate")
            gates.append(Gate(kind=kind, threshold=0, aggregates=aggregates, line=line))
        elif kind == "healthy":
            upstreams = r.strings(value_node, sub)
            for i, name in enumerate(upstreams):
                if name not in table.upstreams:
                    raise r.fail(value_node.value[i], f"{sub}[{i}]", f"unknown upstream {name!r} in {table.source}")
            if not upstreams:
                raise r.fail(value_node, sub, "must name at least one upstream")
            gates.append(Gate(kind=kind, threshold=0, upstreams=upstreams, line=line))
        elif kind == "coverage":
            options = r.mapping(value_node, sub, {"schema_path", "recording"})
            schema_path = r.string(options["schema_path"][1], f"{sub}.schema_path") if "schema_path" in options \
                else DEFAULT_SCHEMA_PATH
            if not schema_path.startswith("/"):
                raise r.fail(options["schema_path"][1], f"{sub}.schema_path", "must be a path starting with '/'")
            recording = None
            if "recording" in options:  # relative to the plan file, like workdir
                recording = Path(r.source).resolve().parent / r.string(options["recording"][1], f"{sub}.recording")
            gates.append(Gate(kind=kind, threshold=0, schema_path=schema_path, recording=recording, line=line))
        elif kind in ("max_diff_rate", "max_error_rate_increase"):
            gates.append(Gate(kind=kind, threshold=float(r.number(value_node, sub, 0, 1)), line=line))
        elif kind in ("min_shadow_sample", "max_relay_backlog"):
            gates.append(Gate(kind=kind, threshold=r.number(value_node, sub, 0, math.inf, integer=True), line=line))
        elif kind == "max_p99_seconds":
            value = r.number(value_node, sub, 0, 3600)
            if value == 0:
                raise r.fail(value_node, sub, "impossible value 0: no request takes 0 seconds")
            gates.append(Gate(kind=kind, threshold=float(value), line=line))
        elif kind == "max_reconcile_clean_age_seconds":  # 0 could never pass: a pass takes time to age from
            gates.append(Gate(kind=kind, threshold=float(r.number(value_node, sub, 1, 30 * 86400)), line=line))
        else:  # max_relay_lag_seconds, min_soak_seconds
            gates.append(Gate(kind=kind, threshold=float(r.number(value_node, sub, 0, 30 * 86400)), line=line))
    return tuple(gates)


def _proxy_metrics(r: _Reader, node: yaml.Node) -> ProxyMetricsSource:
    """A URL, a list of replicas' URLs, or {prometheus: URL} (see gate_sources.py)."""
    what = "must be the proxy's /metrics URL, a list of the replicas' URLs, or {prometheus: URL}"
    if isinstance(node, yaml.MappingNode):
        found = r.mapping(node, "proxy_metrics", {"prometheus"})
        if "prometheus" not in found:
            raise r.fail(node, "proxy_metrics", what)
        url = r.string(found["prometheus"][1], "proxy_metrics.prometheus")
        if not url.startswith(("http://", "https://")):
            raise r.fail(found["prometheus"][1], "proxy_metrics.prometheus", "must be an http:// URL")
        return PrometheusSource(url=url)
    urls = r.strings(node, "proxy_metrics") if isinstance(node, yaml.SequenceNode) else (
        r.string(node, "proxy_metrics"),)
    if not urls or not all(url.startswith(("http://", "https://")) for url in urls):
        raise r.fail(node, "proxy_metrics", what)
    return urls[0] if isinstance(node, yaml.ScalarNode) else urls


def _proxy_metrics_of_environment() -> ProxyMetricsSource | None:
    """$STRANGLER_PROXY_METRICS parsed as a plan's proxy_metrics (errors name the variable), None when unset."""
    value = os.environ.get(PROXY_METRICS_ENV, "").strip()
    if not value:
        return None
    source = f"${PROXY_METRICS_ENV}"
    try:
        node = yaml.compose(value)
    except yaml.YAMLError as exc:
        raise PlanFileError(source, 1, "proxy_metrics", f"not valid YAML: {exc}") from exc
    return _proxy_metrics(_Reader(source), node)


def parse_plan_text(text: str, *, source: Path | str, table: RouteTable) -> Plan:
    source_name = str(source)
    r = _Reader(source_name)
    text = _interpolate(text, source_name)
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PlanFileError(source_name, mark.line + 1 if mark else 1, "file", f"not valid YAML: {problem}") from exc
    if root is None:
        raise PlanFileError(source_name, 1, "file", "empty plan file")
    top = r.mapping(root, "", {"plan", "description", "service", "routes", "proxy_metrics", "sync_projects",
                               "workdir", "settings", "route_file", "steps"})
    if "route_file" in top:
        r.string(top["route_file"][1], "route_file")  # used by load_plan (--routes and $STRANGLER_ROUTES win)
    for required in ("plan", "service", "routes", "proxy_metrics", "steps"):
        if required not in top:
            raise r.fail(root, required, "required")
    name = r.string(top["plan"][1], "plan", _NAME)
    description = r.string(top["description"][1], "description") if "description" in top else ""
    service = r.string(top["service"][1], "service")
    if service not in table.upstreams or service == table.monolith:
        raise r.fail(top["service"][1], "service", f"unknown service upstream {service!r} in {table.source}")
    routes_node = top["routes"][1]
    if not isinstance(routes_node, yaml.SequenceNode) or not routes_node.value:
        raise r.fail(routes_node, "routes", "must be a non-empty list of route prefixes")
    routes = tuple(_route_of(r, table, item, f"routes[{i}]") for i, item in enumerate(routes_node.value))
    proxy_metrics = _proxy_metrics_of_environment() or _proxy_metrics(r, top["proxy_metrics"][1])
    sync_projects = r.strings(top["sync_projects"][1], "sync_projects") if "sync_projects" in top else ()
    for i, project in enumerate(sync_projects):
        if project not in table.upstreams and not project.startswith(("http://", "https://")):
            raise r.fail(top["sync_projects"][1].value[i], f"sync_projects[{i}]",
                         f"{project!r} is neither an upstream of {table.source} nor an http:// base URL "
                         f"(the relay gates read <base URL>/sync/relay/)")
    base = Path(source_name).resolve().parent
    workdir = base / r.string(top["workdir"][1], "workdir") if "workdir" in top else base
    if not workdir.is_dir():
        raise r.fail(top["workdir"][1], "workdir", f"{workdir} is not a directory")
    settings = r.string(top["settings"][1], "settings", _MODULE) if "settings" in top else None

    steps_node = top["steps"][1]
    if not isinstance(steps_node, yaml.SequenceNode) or not steps_node.value:
        raise r.fail(steps_node, "steps", "must be a non-empty list")
    steps: list[Step] = []
    seen: dict[str, int] = {}
    for index, node in enumerate(steps_node.value):
        field = f"steps[{index}]"
        items = r.mapping(node, field, {"name", "kind", "description", "actions", "gates", "watch"})
        if "name" not in items:
            raise r.fail(node, f"{field}.name", "required")
        step_name = r.string(items["name"][1], f"{field}.name", _NAME)
        if step_name in seen:
            raise r.fail(items["name"][1], f"{field}.name", f"duplicate of the step on line {seen[step_name]}")
        seen[step_name] = node.start_mark.line + 1
        if "kind" not in items:
            raise r.fail(node, f"{field}.kind", f"required (one of {', '.join(STEP_KINDS)})")
        kind = r.string(items["kind"][1], f"{field}.kind")
        if kind not in STEP_KINDS:
            raise r.fail(items["kind"][1], f"{field}.kind",
                         f"unknown step kind {kind!r} (one of {', '.join(STEP_KINDS)})")
        actions = ()
        if "actions" in items:
            actions_node = items["actions"][1]
            if not isinstance(actions_node, yaml.SequenceNode):
                raise r.fail(actions_node, f"{field}.actions", "must be a list")
            actions = tuple(_action(r, a, f"{field}.actions[{i}]", table) for i, a in enumerate(actions_node.value))
        gates = _gates(r, items["gates"][1], f"{field}.gates", table) if "gates" in items else ()
        watch = _gates(r, items["watch"][1], f"{field}.watch", table) if "watch" in items else ()
        for gate in watch:
            if gate.direction == "min":
                raise r.fail(items["watch"][1], f"{field}.watch.{gate.kind}",
                             "watch gates are limits (max_*, verify, healthy); minimums belong to gates")
        description_text = r.string(items["description"][1], f"{field}.description") if "description" in items else ""
        if not actions and not gates:
            raise r.fail(node, field, "a step needs actions or gates")
        if settings is None and any(isinstance(a, OwnershipChange) for a in actions):
            raise r.fail(items["actions"][1], f"{field}.actions",
                         "an ownership action needs the plan's `settings` (the Django settings module of the "
                         "project whose ownership file it changes)")
        steps.append(Step(name=step_name, description=f"[{kind}] {description_text}".strip(), actions=actions,
                          gates=gates, watch=watch, line=node.start_mark.line + 1))
    return Plan(name=name, description=description, service=service, routes=routes, proxy_metrics=proxy_metrics,
                sync_projects=sync_projects, steps=tuple(steps), source=Path(source_name),
                workdir=workdir.resolve(), settings=settings, route_file=Path(table.source))
