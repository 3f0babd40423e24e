"""``strangler-plan scaffold``: for one path and one aggregate of the user's app, a route entry, a plan and a
service project skeleton (settings, urls, the aggregate's declaration, sync handlers, health, reads API, first
migration).

The aggregate's model is read from the monolith itself (its settings, set up in this process), so the
service's model has the same columns and keys. Everything is checked before anything is written; the
project goes to a new folder, the plan next to it, and the route entry into the given route file (or a new
one). The service's writes are left to the user: the plan's coverage gate names each one before the flip.
"""

from __future__ import annotations

import ast
import os
import re
import secrets
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from migrations_plan import scaffold_templates as t
from migrations_plan.actions import django_settings_setup
from migrations_plan.errors import ActionFailed, PlanError
from migrations_plan.routefile import route_entry_add
from migrations_plan.scaffold_aggregate import DeclarationError, declaration_code, declared_for, service_aggregate
from servicekit.files import file_write_atomic
from strangler_proxy.loader import RouteFileError, parse_route_text
from strangler_sync.aggregates import DELETED, SNAPSHOT, Aggregate

SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
PATH_PREFIX = re.compile(r"^/([A-Za-z0-9._~-]+/)+$")
AGGREGATE = re.compile(r"^([a-z][a-z0-9_]{0,62})=([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$")
# Field options that name code of the monolith (validators, callables) or only matter to its forms.
DROPPED_OPTIONS = {"validators", "error_messages", "help_text", "verbose_name", "db_comment", "editable",
                   "auto_now", "auto_now_add", "on_delete", "to", "related_name", "related_query_name",
                   "limit_choices_to", "db_constraint", "to_field", "upload_to", "storage", "auto_created",
                   "serialize"}
AUTO_AS_PLAIN = {"AutoField": "IntegerField", "BigAutoField": "BigIntegerField", "SmallAutoField": "SmallIntegerField"}


class ScaffoldError(PlanError):
    exit_code = 2


@dataclass(frozen=True)
class ModelShape:
    label: str  # app_label.Model in the monolith
    name: str  # class name
    pk: str  # key attribute
    fields: tuple[tuple[str, str], ...]  # (attribute, "models.X(...)") in column order
    foreign_keys: tuple[str, ...]
    aggregate: Aggregate  # the service's declaration (bound to its copy of the model)
    monolith_queue: str  # the monolith's consumer queue: the service publishes there once it owns the writes


def _literal(value) -> bool:
    try:
        return ast.literal_eval(repr(value)) == value
    except (ValueError, SyntaxError):
        return False


def _render(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))


def _field_code(field) -> str:
    if field.is_relation:  # a related model the service does not have: keep its key value
        target = field.target_field
        kind = AUTO_AS_PLAIN.get(target.get_internal_type(), target.get_internal_type())
        kwargs = {"null": field.null, "db_index": True}
        if getattr(target, "max_length", None):
            kwargs["max_length"] = target.max_length
        return f"models.{kind}({_render(kwargs)})"
    _name, path, args, kwargs = field.deconstruct()
    if not path.startswith("django.db.models.") or args:
        return f"models.JSONField(null=True)  # {path} in the monolith"
    kept = {k: v for k, v in kwargs.items() if k not in DROPPED_OPTIONS and _literal(v)}
    return f"models.{path.rsplit('.', 1)[1]}({_render(kept)})"


def model_shape(*, model_label: str, settings: str, project_dir: Path, aggregate: str,
                service_app: str) -> ModelShape:
    """Read the aggregate's model, and its declaration if any, from the monolith (Django set up here with its
    settings)."""
    try:
        django_settings_setup(settings=settings, workdir=project_dir)
    except ActionFailed as exc:
        raise ScaffoldError(str(exc)) from exc
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured

    try:
        model = apps.get_model(model_label)
    except (LookupError, ValueError) as exc:
        raise ScaffoldError(f"--aggregate: no model {model_label!r} in {settings} ({exc})") from None
    from strangler_sync.aggregates import aggregates_registered

    try:
        declared = declared_for(model=model, aggregates=aggregates_registered())
        declaration = service_aggregate(name=aggregate, model=model, declared=declared,
                                        service_model=f"{service_app}.{model.__name__}")
    except (DeclarationError, ImproperlyConfigured) as exc:
        raise ScaffoldError(str(exc)) from None
    fields = tuple((f.attname, _field_code(f)) for f in model._meta.concrete_fields)
    return ModelShape(label=model._meta.label, name=model.__name__, pk=model._meta.pk.attname, fields=fields,
                      foreign_keys=tuple(f.attname for f in model._meta.concrete_fields if f.is_relation),
                      aggregate=declaration, monolith_queue=_monolith_queue())


def _monolith_queue() -> str:
    """The queue the monolith's settings name (before any namespace, which the service's own settings add):
    its QUEUE, else ``sync.<ORIGIN>``; a third-party host is rarely called "monolith"."""
    from django.conf import settings

    from strangler_sync.conf import sync_settings

    return (getattr(settings, "STRANGLER_SYNC", None) or {}).get("QUEUE") or f"sync.{sync_settings().origin}"


@dataclass(frozen=True)
class Scaffold:
    service: str
    path: str
    aggregate: str
    model_label: str
    settings: str
    project_dir: Path  # the monolith's folder (manage.py; its settings import from here)
    out: Path  # the service project goes to out/<service>/, the plan to out/plans/<service>.yaml
    routes: Path | None  # add to this route file; None: write out/routes.yaml
    service_url: str = "http://127.0.0.1:8002"
    monolith_url: str = "http://127.0.0.1:8000"


def scaffold_parse(*, service: str, path: str, aggregate: str, **rest) -> Scaffold:
    if not SERVICE_NAME.match(service):
        raise ScaffoldError(f"--service: {service!r} must be a lowercase Python identifier (e.g. billing)")
    if not PATH_PREFIX.match(path):
        raise ScaffoldError(f"--path: {path!r} must be a path prefix like /api/invoices/")
    match = AGGREGATE.match(aggregate)
    if match is None:
        raise ScaffoldError(f"--aggregate: expected NAME=APP_LABEL.MODEL (e.g. invoice=billing.Invoice), "
                            f"got {aggregate!r}")
    return Scaffold(service=service, path=path, aggregate=match.group(1),
                    model_label=f"{match.group(2)}.{match.group(3)}", **rest)


def _project_files(s: Scaffold, shape: ModelShape) -> dict[str, str]:
    package = f"{s.service}_service"
    const = s.aggregate.upper()
    declaration = shape.aggregate
    upserts = [a for a in (*declaration.actions, SNAPSHOT) if a != DELETED]
    names = {"service": s.service, "package": package, "model": shape.name, "model_label": shape.label,
             "aggregate": s.aggregate, "pk": shape.pk, "path": s.path, "route": s.path.lstrip("/"),
             "env": s.service.upper(), "secret": secrets.token_urlsafe(40),
             "fk_note": ", ".join(shape.foreign_keys) or "none here",
             "field_lines": "\n".join(f"    {attr} = {code}" for attr, code in shape.fields),
             "const": const, "monolith_queue": shape.monolith_queue,
             "uuid_import": "import uuid\n\n" if declaration.key_type is uuid.UUID else "",
             "declaration": declaration_code(const=const, aggregate=declaration),
             "upsert_events": ", ".join(f'{const}.event("{a}")' for a in upserts)}
    files = {"manage.py": t.MANAGE, f"{package}/__init__.py": t.INIT, f"{package}/settings.py": t.SETTINGS,
             f"{package}/urls.py": t.URLS, f"{package}/wsgi.py": t.WSGI, f"{package}/apps.py": t.APPS,
             f"{package}/models.py": t.MODELS, f"{package}/handlers.py": t.HANDLERS, f"{package}/api.py": t.API,
             f"{package}/health.py": t.HEALTH, f"{package}/aggregates.py": t.AGGREGATES,
             f"{package}/migrations/__init__.py": ""}
    rendered = {name: text.format(**names) for name, text in files.items()}
    if DELETED in declaration.actions:
        rendered[f"{package}/handlers.py"] += t.DELETE_HANDLER.format(**names)
    return rendered


def _route_text(s: Scaffold) -> tuple[Path, str]:
    upstream = f"{{url: {s.service_url}, health_path: /healthz}}"
    entry = t.ROUTE_ENTRY.format(path=s.path, service=s.service, dash="{dash}", indent="{indent}")
    if s.routes is None:
        text = t.ROUTE_FILE.format(monolith_url=s.monolith_url, service=s.service, upstream=upstream)
        return s.out / "routes.yaml", text + entry.format(dash="  ", indent="    ")
    try:
        text = s.routes.read_text(encoding="utf-8")
        return s.routes, route_entry_add(text, source=str(s.routes), upstream=s.service, upstream_text=upstream,
                                         entry=entry)
    except OSError as exc:
        raise ScaffoldError(f"--routes: {s.routes}: {exc.strerror or exc}") from exc
    except ActionFailed as exc:
        raise ScaffoldError(str(exc)) from exc


def scaffold_write(*, scaffold: Scaffold) -> list[Path]:
    """Write everything (nothing when a check fails); returns the files written."""
    s = scaffold
    project, plan_path = s.out / s.service, s.out / "plans" / f"{s.service}.yaml"
    for taken in (project, plan_path):
        if taken.exists():
            raise ScaffoldError(f"{taken} exists already: nothing was written")
    if not (s.project_dir / "manage.py").is_file():  # the plan's backfill runs it there
        raise ScaffoldError(f"--project-dir: no manage.py in {s.project_dir} (the monolith's folder)")
    shape = model_shape(model_label=s.model_label, settings=s.settings, project_dir=s.project_dir,
                        aggregate=s.aggregate, service_app=f"{s.service}_service")
    routes_path, routes_text = _route_text(s)
    try:
        table = parse_route_text(routes_text, source=str(routes_path))
    except RouteFileError as exc:
        raise ScaffoldError(f"the route entry would make the route file invalid, not written: {exc}") from exc
    if sum(route.prefix == s.path for route in table.routes) != 1:
        raise ScaffoldError(f"{routes_path}: a route {s.path} exists already: nothing was written")
    plan_text = t.PLAN.format(
        path=s.path, model_label=shape.label, aggregate=s.aggregate, service=s.service,
        plan=s.service.replace("_", "-"), env=s.service.upper(), plan_path=plan_path, settings=s.settings,
        manage="manage.py",
        route_file=os.path.relpath(routes_path.resolve(), plan_path.parent.resolve()),
        workdir=os.path.relpath(s.project_dir.resolve(), plan_path.parent.resolve()))
    written = []
    for name, text in _project_files(s, shape).items():
        target = project / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "manage.py", "makemigrations", f"{s.service}_service", "-v", "0"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        shutil.rmtree(project)  # new folder, ours alone: nothing half-written stays
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise ScaffoldError(f"the scaffolded project does not load (makemigrations: {last}); nothing was written")
    written += sorted((project / f"{s.service}_service" / "migrations").glob("0*.py"))
    file_write_atomic(path=plan_path, data=plan_text)
    file_write_atomic(path=routes_path, data=routes_text)
    return [*written, plan_path, routes_path]
