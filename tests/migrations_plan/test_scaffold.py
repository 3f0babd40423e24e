"""`strangler-plan scaffold` on the storefront's monolith: the service project it writes passes `manage.py check`
as written, migrates, serves an OpenAPI schema; its plan and route entry load; bad input writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from migrations_plan.loader import load_plan
from strangler_proxy.loader import load_route_file

from .procs import REPO

pytestmark = pytest.mark.slow


def scaffold(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "STRANGLER_ROUTES")}
    return subprocess.run([sys.executable, "-m", "migrations_plan", "scaffold", *args], cwd=cwd,
                          env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)


def manage(project, *args: str) -> subprocess.CompletedProcess:
    # The project alone: no repository on the path but the installed toolkit, its own folder as cwd.
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_scaffolded_service_is_accepted_by_check_as_written(tmp_path):
    out = tmp_path / "out"
    done = scaffold("--service", "reviewsvc", "--path", "/api/reviews/", "--aggregate", "review=reviews.Review",
                    "--settings", "monolith.settings", "--project-dir", str(REPO), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    project = out / "reviewsvc"
    assert (project / "reviewsvc_service" / "migrations" / "0001_initial.py").exists()

    checked = manage(project, "check")
    assert checked.returncode == 0, checked.stderr
    assert "System check identified no issues" in checked.stdout
    assert manage(project, "migrate", "--noinput", "-v", "0").returncode == 0
    schema = manage(project, "spectacular", "--format", "openapi-json")
    assert schema.returncode == 0, schema.stderr
    paths = json.loads(schema.stdout)["paths"]
    assert {"/api/reviews/", "/api/reviews/{id}/", "/sync/relay/"} <= set(paths)  # what the gates read

    models = (project / "reviewsvc_service" / "models.py").read_text()
    assert "product_id = models.BigIntegerField(" in models and "rating = models.PositiveSmallIntegerField()" in models
    table = load_route_file(out / "routes.yaml")
    [route] = table.routes
    assert (route.prefix, route.service, route.mode) == ("/api/reviews/", "reviewsvc", "monolith")
    assert table.upstreams["reviewsvc"].health_path == "/healthz"
    plan = load_plan(str(out / "plans" / "reviewsvc.yaml"), routes=out / "routes.yaml")
    assert plan.workdir == REPO.resolve() and plan.settings == "monolith.settings"
    assert [s.name for s in plan.steps][-2:] == ["flip-ownership", "retire-monolith-path"]
    assert "coverage" in {g.kind for g in plan.step("flip-ownership").gates}


def test_an_entry_goes_into_an_existing_route_file_and_bad_input_writes_nothing(tmp_path, routes_file):
    original = routes_file.read_text()
    common = ("--settings", "monolith.settings", "--project-dir", str(REPO), "--out", str(tmp_path / "out"),
              "--routes", str(routes_file))
    taken = scaffold("--service", "addresses", "--path", "/api/reviews/", "--aggregate", "address=accounts.Address",
                     *common, cwd=tmp_path)
    assert taken.returncode == 2 and taken.stderr.strip().splitlines() == [
        f"error: {routes_file}: a route /api/reviews/ exists already: nothing was written"]
    unknown = scaffold("--service", "addresses", "--path", "/api/addresses/", "--aggregate", "address=accounts.Nope",
                       *common, cwd=tmp_path)
    assert unknown.returncode == 2 and "no model 'accounts.Nope' in monolith.settings" in unknown.stderr
    bad = scaffold("--service", "Addresses", "--path", "/api/addresses/", "--aggregate", "address=accounts.Address",
                   *common, cwd=tmp_path)
    assert bad.returncode == 2 and "--service: 'Addresses' must be a lowercase Python identifier" in bad.stderr
    elsewhere = scaffold("--service", "addresses", "--path", "/api/addresses/", "--aggregate",
                         "address=accounts.Address", *common[:2], "--project-dir", str(tmp_path), *common[4:],
                         cwd=tmp_path)
    assert elsewhere.returncode == 2 and f"--project-dir: no manage.py in {tmp_path}" in elsewhere.stderr
    assert routes_file.read_text() == original and not (tmp_path / "out").exists()

    done = scaffold("--service", "addresses", "--path", "/api/addresses/", "--aggregate", "address=accounts.Address",
                    *common, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = routes_file.read_text()
    upstream = "  addresses: {url: http://127.0.0.1:8002, health_path: /healthz}\n"
    assert upstream in text and text.replace(upstream, "").startswith(original)  # comments, other entries kept
    table = load_route_file(routes_file)
    assert [r.prefix for r in table.routes][-1] == "/api/addresses/" and len(table.routes) == 6
    assert table.upstreams["addresses"].url == "http://127.0.0.1:8002"
    assert manage(tmp_path / "out" / "addresses", "check").returncode == 0
    load_plan(str(tmp_path / "out" / "plans" / "addresses.yaml"), routes=routes_file)
