"""docker-compose.yml against the code (no Docker engine here): every command, variable, port and health check is real.

Commands are parsed by the very parsers that will run them: Django's command parsers (in the project's own
settings, one subprocess per project), gunicorn's config loader (which also imports the WSGI app), Celery's
click commands on the project's app, the strangler-proxy CLI and the diff endpoint's --help.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
OUR_IMAGE = "strangler-fig:latest"
ROUTES_IN_CONTAINER = "/etc/strangler/routes.yaml"

# Variables read by programs rather than by our code, with the reason they are allowed.
TOOL_VARIABLES = {
    "WEB_CONCURRENCY": "gunicorn's default worker count",
}
IMAGE_VARIABLES = {
    "postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD"},  # documented by the postgres image
}

_ENV_READ = re.compile(
    r"""(?:os\.environ\.get\(|os\.environ\.setdefault\(|os\.environ\[|os\.getenv\(|env_bool\(|env_list\("""
    r"""|var_name(?::\s*str)?\s*=\s*|_ENV\s*=\s*)\s*["']([A-Z][A-Z0-9_]*)["']"""
)
_SHELL_READ = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$."""

    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if op == ":?":
            if not env.get(name):
                raise AssertionError(f"${{{name}}} is required: {arg}")
            return env[name]
        if op == ":-":
            return env.get(name) or arg
        return env.get(name, "")

    value = re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:[-?])([^}]*))?\}", one, value)
    return value.replace("$$", "$")


def ours() -> dict[str, dict]:
    return {name: spec for name, spec in SERVICES.items() if spec.get("image") == OUR_IMAGE}


def project_of(command: list[str]) -> str:
    """Which project's code a command runs: monolith, a service under extracted/, the proxy or the control plane."""
    text = " ".join(command)
    if "migrations_plan" in text:
        return "control"
    if match := re.search(r"extracted[./](\w+)", text):
        return match.group(1)
    if re.search(r"strangler[_-]proxy|nginx/plane\.sh", text):
        return "proxy"
    assert re.search(r"\bmanage\.py\b|\bmonolith", text), f"cannot tell the project of {command}"
    return "monolith"


def settings_of(project: str) -> str:
    return "monolith.settings" if project == "monolith" else f"extracted.{project}.settings"


def code_roots(project: str) -> list[Path]:
    common = [ROOT / "servicekit", ROOT / "deploy"]
    if project == "proxy":
        return [*common, ROOT / "strangler_proxy"]
    if project == "control":  # plans read gates over the proxy and projects, flip ownership in the monolith's settings
        return [*common, ROOT / "migrations_plan", ROOT / "strangler_proxy", ROOT / "strangler_sync", ROOT / "monolith"]
    own = ROOT / ("monolith" if project == "monolith" else f"extracted/{project}")
    return [*common, ROOT / "strangler_sync", own]


def variables_read(project: str) -> set[str]:
    names: set[str] = set()
    for root in code_roots(project):
        for path in root.rglob("*.py"):
            names |= set(_ENV_READ.findall(path.read_text()))
        for path in root.rglob("*.sh"):
            names |= set(_SHELL_READ.findall(path.read_text()))
    if project == "proxy":  # the override secret's variable is named in the route file
        names.add(yaml.safe_load((ROOT / "deploy/routes.yaml").read_text())["override"]["secret_env"])
    return names


def routes_file() -> dict:
    return yaml.safe_load((ROOT / "deploy/routes.yaml").read_text())


def health_url(spec: dict) -> str | None:
    test = spec.get("healthcheck", {}).get("test")
    if test and test[:3] == ["CMD", "python", "deploy/healthcheck.py"]:
        return test[3]
    return None


def commands_of(project: str) -> dict[str, list[str]]:
    return {name: spec["command"] for name, spec in ours().items() if project_of(spec["command"]) == project}


PROBE = r"""
import importlib, json, sys
import click
import django
django.setup()
from celery.app.utils import find_app
from celery.bin.base import CLIContext
from celery.bin.celery import celery as celery_cli
from django.core.management import get_commands, load_command_class
from django.urls import resolve
from gunicorn.app.wsgiapp import WSGIApplication

checks = json.loads(sys.argv[1])
out = {}
commands = get_commands()
for key, argv in checks["manage"].items():
    name, *args = argv
    if name not in commands:
        out[key] = f"no manage.py command {name!r}"
        continue
    parser = load_command_class(commands[name], name).create_parser("manage.py", name)
    try:
        parser.parse_args(args)
        out[key] = "ok"
    except (Exception, SystemExit) as exc:
        out[key] = f"manage.py {name} refuses {args}: {exc}"
for key, argv in checks["gunicorn"].items():
    sys.argv = ["gunicorn", *argv]
    try:
        app = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]")
        wsgi = app.load_wsgiapp()
        out[key] = {"bind": app.cfg.bind, "callable": callable(wsgi)}
    except (Exception, SystemExit) as exc:
        out[key] = f"gunicorn refuses {argv}: {exc!r}"
for key, (app_name, argv) in checks["celery"].items():
    try:
        app = find_app(app_name)
        app.loader.import_default_modules()
        command = celery_cli.commands[argv[0]]
        parent = click.Context(celery_cli, obj=CLIContext(app=app, no_color=True, workdir=None, quiet=True))
        command.make_context(argv[0], argv[1:], parent=parent)
        missing = [e["task"] for e in app.conf.beat_schedule.values() if e["task"] not in app.tasks]
        out[key] = {"app": app.main, "beat_tasks_missing": missing, "beat_entries": len(app.conf.beat_schedule),
                    "default_queue": app.conf.task_default_queue}
    except (Exception, SystemExit) as exc:
        out[key] = f"celery refuses -A {app_name} {argv}: {exc!r}"
for path in checks["paths"]:
    try:
        resolve(path)
        out[path] = "ok"
    except Exception as exc:
        out[path] = f"{path} does not resolve: {exc!r}"
print("PROBE" + json.dumps(out))
"""


def probe(project: str, tmp_path: Path, checks: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    env.update(DJANGO_SETTINGS_MODULE=settings_of(project), STRANGLER_VAR_DIR=str(tmp_path), DEBUG="1")
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(checks)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("PROBE")), None)
    assert line, f"probe failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return json.loads(line[len("PROBE"):])


def django_projects() -> list[str]:
    return sorted({project_of(s["command"]) for s in ours().values()} - {"proxy", "control"})


@pytest.fixture(scope="module")
def probes(tmp_path_factory) -> dict[str, dict]:
    results = {}
    for project in django_projects():
        checks: dict = {"manage": {}, "gunicorn": {}, "celery": {}, "paths": []}
        for name, command in commands_of(project).items():
            if command[0] == "python" and command[1].endswith("manage.py"):
                checks["manage"][name] = command[2:]
            elif command[0] == "gunicorn":
                checks["gunicorn"][name] = command[1:]
            elif command[0] == "celery":
                assert command[1] == "-A"
                checks["celery"][name] = (command[2], command[3:])
                test = SERVICES[name].get("healthcheck", {}).get("test")
                if test:
                    hc = shlex.split(interpolate(test[1], {}).replace("$HOSTNAME", "host"))
                    checks["celery"][f"{name}:healthcheck"] = (hc[2], hc[3:])
            else:
                raise AssertionError(f"{name}: unexpected command {command}")
            if url := health_url(SERVICES[name]):
                checks["paths"].append(urlsplit(url).path)
        if project == "monolith":  # the proxy's /healthz is routed to the monolith
            checks["paths"].append(urlsplit(health_url(SERVICES["proxy"])).path)
        results[project] = probe(project, tmp_path_factory.mktemp(f"probe-{project}"), checks)
    return results


def test_every_django_command_is_a_real_entry_point(probes):
    problems = []
    for project in django_projects():
        for name, command in commands_of(project).items():
            result = probes[project][name]
            if command[0] == "gunicorn":
                if not (isinstance(result, dict) and result["callable"]):
                    problems.append(f"{name}: {result}")
            elif command[0] == "celery":
                if not isinstance(result, dict):
                    problems.append(f"{name}: {result}")
                elif "beat" in command and (result["beat_tasks_missing"] or not result["beat_entries"]):
                    problems.append(f"{name}: beat schedule {result}")
                elif "worker" in command and command[command.index("-Q") + 1] != result["default_queue"]:
                    # the relay task goes to the app's default queue: a worker on another queue never runs it
                    problems.append(f"{name}: consumes {command[command.index('-Q') + 1]}, tasks go to {result}")
                hc = probes[project].get(f"{name}:healthcheck")
                if hc is not None and not isinstance(hc, dict):
                    problems.append(f"{name} healthcheck: {hc}")
            elif result != "ok":
                problems.append(f"{name}: {result}")
    assert problems == []
    # every project runs the full set: migrate, web, relay (Celery worker + beat), consumer
    for project in django_projects():
        kinds = {" ".join(c[:5]) for c in commands_of(project).values()}
        joined = "\n".join(kinds)
        for needed in ("migrate", "gunicorn", " worker", " beat", "sync_consume"):
            assert needed in joined, f"{project} has no {needed.strip()} process"


def test_health_check_paths_resolve(probes):
    for project in django_projects():
        for key, value in probes[project].items():
            if key.startswith("/"):
                assert value == "ok", value


def test_ports_match_binds_routes_and_health_checks(probes):
    upstreams = routes_file()["upstreams"]
    for project in django_projects():
        for name, command in commands_of(project).items():
            if command[0] != "gunicorn":
                continue
            (bind,) = probes[project][name]["bind"]
            port = bind.rsplit(":", 1)[1]
            spec = SERVICES[name]
            assert bind.startswith("0.0.0.0:"), f"{name} must listen on every interface of its container"
            assert spec["expose"] == [port]
            assert urlsplit(health_url(spec)).port == int(port)
            upstream = upstreams[name]
            url = upstream["url"] if isinstance(upstream, dict) else upstream
            assert url == f"http://{name}:{port}", f"deploy/routes.yaml upstream {name} is {url}"
    # every upstream of the route file is a web service of the stack
    assert set(upstreams) <= set(SERVICES)

    diff = SERVICES["diff-endpoint"]
    listen = diff["command"][diff["command"].index("--listen") + 1]
    assert listen == f"0.0.0.0:{diff['expose'][0]}"
    assert routes_file()["settings"]["diff_endpoint"] == f"diff-endpoint:{diff['expose'][0]}"
    assert urlsplit(health_url(diff)).port == int(diff["expose"][0])

    proxy = SERVICES["proxy"]
    listen_port = proxy["environment"]["PROXY_LISTEN"].rsplit(":", 1)[1]
    published = [p.split(":")[-1] for p in proxy["ports"]]
    assert published == [listen_port]
    assert urlsplit(health_url(proxy)).port == int(listen_port)


def test_every_variable_set_is_read_by_the_code():
    unread = []
    for name, spec in SERVICES.items():
        env = spec.get("environment") or {}
        if spec.get("image") == OUR_IMAGE:
            readable = variables_read(project_of(spec["command"])) | set(TOOL_VARIABLES)
        else:
            readable = set(IMAGE_VARIABLES.get(name, set()))
            for volume in spec.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("./") and source.endswith(".sh"):
                    readable |= set(_SHELL_READ.findall((ROOT / source).read_text()))
        unread += [f"{name}: {var}" for var in env if var not in readable]
    assert unread == []


def test_tool_variables_are_read_by_the_tool():
    import gunicorn.config

    assert "WEB_CONCURRENCY" in Path(gunicorn.config.__file__).read_text()


REQUIRED_SECRETS = {"SECRET_KEY": "x" * 50, "INVENTORY_SERVICE_TOKEN": "t" * 32, "STRANGLER_IDENTITY_KEY": "k" * 43,
                    "STRANGLER_SYNC_VERIFY_TOKEN": "v" * 32}


def test_interpolation_needs_only_the_secrets():
    env = dict(REQUIRED_SECRETS)
    for spec in SERVICES.values():
        for value in (spec.get("environment") or {}).values():
            interpolate(str(value), env)
    with pytest.raises(AssertionError, match="SECRET_KEY"):
        interpolate(SERVICES["monolith"]["environment"]["SECRET_KEY"], {})
    # the monolith's checkout token and the inventory service's accepted tokens are the same secret
    assert SERVICES["monolith"]["environment"]["INVENTORY_SERVICE_TOKEN"].startswith("${INVENTORY_SERVICE_TOKEN:?")
    assert SERVICES["inventory"]["environment"]["INVENTORY_API_TOKENS"].startswith("${INVENTORY_SERVICE_TOKEN:?")
    # the monolith signs identities the services verify: one key
    for name in ("monolith", "catalog", "reviews"):
        assert SERVICES[name]["environment"]["STRANGLER_IDENTITY_KEY"].startswith("${STRANGLER_IDENTITY_KEY:?")


def test_databases_created_by_the_init_script_are_the_ones_used():
    postgres = SERVICES["postgres"]
    created = set(postgres["environment"]["STRANGLER_DATABASES"].split())
    used = set()
    for spec in ours().values():
        for var, value in (spec.get("environment") or {}).items():
            if var.endswith("DATABASE_URL"):
                url = urlsplit(interpolate(value, REQUIRED_SECRETS))
                assert url.hostname == "postgres" and url.username == postgres["environment"]["POSTGRES_USER"]
                used.add(url.path.lstrip("/"))
    assert used == created
    mount = next(v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v)
    assert (ROOT / mount.split(":")[0]).is_file()


def test_dependencies_volumes_and_files_exist():
    declared_volumes = set(COMPOSE["volumes"])
    for name, spec in SERVICES.items():
        for dependency, condition in (spec.get("depends_on") or {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], f"{dependency} has no health check"
            if condition["condition"] == "service_completed_successfully":
                assert SERVICES[dependency].get("restart") == "no", f"{dependency} must be a one-shot job"
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared_volumes, f"{name} uses undeclared volume {source}"
        if spec.get("image") == OUR_IMAGE and not name.endswith(("-migrate", "-collectstatic", "-seed")):
            assert spec.get("restart", SERVICES["monolith"].get("restart")) != "no"
    for path in ("deploy/nginx/plane.sh", "deploy/postgres/init-databases.sh", "deploy/healthcheck.py"):
        assert os.access(ROOT / path, os.X_OK), f"{path} is not executable"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "nginx" in dockerfile and "STRANGLER_VAR_DIR=/var/lib/strangler" in dockerfile
    assert {"strangler-state", "pgdata", "rabbitmq-data"} <= declared_volumes


def test_shell_scripts_parse_and_call_real_cli_commands():
    from strangler_proxy.cli import build_parser

    for script in ("deploy/nginx/plane.sh", "deploy/postgres/init-databases.sh"):
        subprocess.run(["sh", "-n", str(ROOT / script)], check=True)
    text = (ROOT / "deploy/nginx/plane.sh").read_text().replace("\\\n", " ")
    calls = re.findall(r"strangler-proxy ([a-z-]+)([^\n;]*)", text)
    assert {c[0] for c in calls} == {"nginx-run", "status"}
    parser = build_parser()
    for subcommand, rest in calls:
        argv = [subcommand, *shlex.split(re.sub(r'"\$[a-z_]+(/[^"]*)?"', "x", rest))]
        parser.parse_args(argv)  # exits (fails the test) on an unknown option
    # the variables plane.sh reads are the ones the proxy service sets (or have defaults there)
    proxy_env = set(SERVICES["proxy"]["environment"])
    assert set(_SHELL_READ.findall(text)) <= proxy_env


def test_route_file_is_valid_and_mounted_where_commands_read_it():
    from strangler_proxy.loader import load_route_file

    table = load_route_file(ROOT / "deploy/routes.yaml")
    assert table.monolith == "monolith" and "catalog" in table.upstreams
    # the folder, not the file: a route file edit is an atomic rename, which a single-file bind mount refuses
    folder = str(Path(ROUTES_IN_CONTAINER).parent)
    for name in ("proxy", "diff-endpoint"):
        assert f"./deploy:{folder}:ro" in SERVICES[name]["volumes"]
    assert f"./deploy:{folder}" in SERVICES["control-plane"]["volumes"]  # the control plane writes it
    for name in ("proxy", "control-plane"):
        assert SERVICES[name]["environment"]["STRANGLER_ROUTES"] == ROUTES_IN_CONTAINER
    control = SERVICES["control-plane"]["command"]
    assert control[control.index("--routes") + 1] == ROUTES_IN_CONTAINER
    diff = SERVICES["diff-endpoint"]["command"]
    assert diff[diff.index("--routes") + 1] == ROUTES_IN_CONTAINER


def test_diff_endpoint_command_and_health_path(tmp_path):
    command = SERVICES["diff-endpoint"]["command"]
    assert command[:3] == ["python", "-m", "strangler_proxy.diff_endpoint"]
    usage = subprocess.run([sys.executable, "-m", "strangler_proxy.diff_endpoint", "--help"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60, check=True).stdout
    for option in (arg for arg in command[3:] if arg.startswith("--")):
        assert option in usage
    # its health check path answers on a real endpoint
    from strangler_proxy.diff_endpoint import DiffEndpoint
    from strangler_proxy.loader import load_route_file

    endpoint = DiffEndpoint(table=load_route_file(ROOT / "deploy/routes.yaml"), port=0).start()
    try:
        path = urlsplit(health_url(SERVICES["diff-endpoint"])).path
        with urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}{path}", timeout=5) as response:
            assert response.status == 200
    finally:
        endpoint.stop()


def test_every_migration_plan_can_walk_the_compose_route_file():
    plans = sorted(p.stem for p in (ROOT / "migrations_plan/plans").glob("*.yaml"))
    result = subprocess.run([sys.executable, "-m", "migrations_plan", "check", "--routes",
                             str(ROOT / "deploy/routes.yaml"), *plans],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def environment_of(name: str) -> dict[str, str]:
    return {k: interpolate(str(v), REQUIRED_SECRETS) for k, v in (SERVICES[name].get("environment") or {}).items()}


def test_every_project_and_the_control_plane_share_the_verify_token():
    from strangler_sync.verify import VERIFY_TOKEN_ENV

    takers = [n for n, s in ours().items() if project_of(s["command"]) not in ("proxy",)]
    assert "control-plane" in takers
    for name in takers:
        assert environment_of(name).get(VERIFY_TOKEN_ENV) == REQUIRED_SECRETS[VERIFY_TOKEN_ENV], name


def test_the_proxy_registers_a_digest_url_the_control_plane_reaches():
    env = SERVICES["proxy"]["environment"]
    port = env["PROXY_ADMIN_LISTEN"].rsplit(":", 1)[1]
    assert env["PROXY_ADMIN_LISTEN"].startswith("0.0.0.0:") and SERVICES["proxy"]["expose"] == [port]
    assert env["PROXY_ADMIN_URL"] == f"http://proxy:{port}"


def test_prometheus_scrapes_the_exporter_and_the_diff_endpoint_and_the_plans_ask_it():
    from migrations_plan.gate_sources import PrometheusSource
    from migrations_plan.loader import PROXY_METRICS_ENV, load_plan

    exporter = SERVICES["proxy-metrics"]
    command = exporter["command"]
    assert command[:2] == ["strangler-proxy", "nginx-metrics"]
    listen = command[command.index("--listen") + 1]
    assert listen == f"0.0.0.0:{exporter['expose'][0]}" and urlsplit(health_url(exporter)).port == int(
        exporter["expose"][0])
    assert command[command.index("--runtime-dir") + 1] == SERVICES["proxy"]["environment"]["NGINX_RUNTIME_DIR"]

    prometheus = SERVICES["prometheus"]
    mount = next(v for v in prometheus["volumes"] if v.startswith("./"))
    config = yaml.safe_load((ROOT / mount.split(":")[0]).read_text())
    assert f"--config.file={mount.split(':')[1]}" in prometheus["command"]
    targets = {t for job in config["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    diff_port = SERVICES["diff-endpoint"]["expose"][0]
    assert targets == {f"proxy-metrics:{exporter['expose'][0]}", f"diff-endpoint:{diff_port}"}
    port = prometheus["expose"][0]
    assert f"--web.listen-address=0.0.0.0:{port}" in prometheus["command"]
    if promtool := shutil.which("promtool"):
        subprocess.run([promtool, "check", "config", "--syntax-only", str(ROOT / mount.split(":")[0])], check=True,
                       capture_output=True, timeout=60)

    source = environment_of("control-plane")[PROXY_METRICS_ENV]
    os.environ[PROXY_METRICS_ENV] = source
    try:
        plan = load_plan(str(ROOT / "migrations_plan/plans/catalog.yaml"), routes=ROOT / "deploy/routes.yaml")
    finally:
        del os.environ[PROXY_METRICS_ENV]
    assert plan.proxy_metrics == PrometheusSource(url=f"http://prometheus:{port}")


def test_control_plane_command_is_the_dashboard_on_its_published_port():
    from migrations_plan.dashboard.cli import build_parser

    spec = SERVICES["control-plane"]
    assert spec["command"][:3] == ["python", "-m", "migrations_plan.dashboard"]
    args = build_parser().parse_args(spec["command"][3:])
    assert args.host == "0.0.0.0" and spec["ports"] == [f"{args.port}:{args.port}"]
    assert urlsplit(health_url(spec)).port == args.port
    webs = {name: f"http://{name}:{spec_['expose'][0]}" for name, spec_ in ours().items()
            if spec_["command"][0] == "gunicorn"}
    assert dict(args.sync_project) == webs
    assert args.proxy_admin == f"http://diff-endpoint:{SERVICES['diff-endpoint']['expose'][0]}"
