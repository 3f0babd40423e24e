"""`strangler-plan scaffold` on the storefront's monolith: the service project it writes passes `manage.py check`
as written, migrates, serves an OpenAPI schema; its plan and route entry load; bad input writes nothing."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import override_settings

from migrations_plan.loader import load_plan
from monolith import events
from monolith.catalog.models import Product
from monolith.reviews.models import Review
from strangler_proxy.loader import load_route_file
from strangler_sync.schemas import payload_validate
from strangler_sync.snapshots import aggregate_payload

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


def declarations(path):
    """The generated aggregates module, loaded from its file (it imports nothing but strangler_sync)."""
    spec = importlib.util.spec_from_file_location("scaffolded_aggregates", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.django_db
def test_the_scaffolded_service_is_accepted_by_check_as_written(tmp_path, django_user_model):
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

    # The monolith's contract for reviews.Review, copied as code and bound to the service's model.
    review = declarations(project / "reviewsvc_service" / "aggregates.py").REVIEW
    assert (review.name, review.key, review.key_type, review.actions, review.schemas, review.fields) == (
        events.REVIEW.name, events.REVIEW.key, events.REVIEW.key_type, events.REVIEW.actions, events.REVIEW.schemas,
        events.REVIEW.fields)
    assert review.model == "reviewsvc_service.Review" and review.snapshot is None
    assert "monolith" not in (project / "reviewsvc_service" / "aggregates.py").read_text().split('"""')[-1]
    settings_text = (project / "reviewsvc_service" / "settings.py").read_text()
    assert '"AGGREGATES": ["reviewsvc_service.aggregates.REVIEW"]' in settings_text

    # What the monolith emits for a row passes the service's declaration, and its handler stores it.
    author = django_user_model.objects.create_user(username="ann", password="pw-ann-1")
    product = Product.objects.create(sku="S-1", slug="s-1", name="Lamp", price=Decimal("9.50"))
    row = Review.objects.create(product=product, user=author, rating=4, title="Bright", body="Warm light.")
    payload = aggregate_payload(aggregate_type="review", instance=row)
    with override_settings(STRANGLER_SYNC={**settings.STRANGLER_SYNC, "AGGREGATES": [review]}):
        payload_validate(event_type=review.event("created"), schema_version=1, payload=payload)
    applied = manage(project, "shell", "-c", (
        "import datetime, json; from strangler_sync.handlers import SyncEvent; "
        "from reviewsvc_service.handlers import review_upsert; from reviewsvc_service.models import Review; "
        f"review_upsert(event=SyncEvent(message_id='m-1', event_type='review.created', aggregate_type='review', "
        f"aggregate_id='{row.id}', version=1, schema_version=1, payload=json.loads({json.dumps(payload)!r}), "
        "occurred_at=datetime.datetime.now(datetime.UTC), origin='monolith', correlation_id='c-1')); "
        f"print(json.dumps(list(Review.objects.filter(pk={row.id}).values('product_id', 'user_id', 'rating', "
        "'title', 'body'))))"))
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout.strip().splitlines()[-1]) == [  # after the shell's own banner
        {"product_id": product.id, "user_id": author.id, "rating": 4, "title": "Bright", "body": "Warm light."}]
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
    renamed = scaffold("--service", "feedback", "--path", "/api/feedback/", "--aggregate", "feedback=reviews.Review",
                       *common, cwd=tmp_path)
    assert renamed.returncode == 2 and renamed.stderr.strip().splitlines() == [
        "error: --aggregate: the monolith declares reviews.Review as aggregate 'review', not 'feedback'"]
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
    # The monolith declares no address aggregate: the contract comes from the columns.
    address = declarations(tmp_path / "out" / "addresses" / "addresses_service" / "aggregates.py").ADDRESS
    assert (address.key, address.key_type, address.model) == ("id", int, "addresses_service.Address")
    assert address.schemas[1].required == {
        "id": (int,), "user_id": (int,), "name": (str,), "line1": (str,), "line2": (str,), "city": (str,),
        "postal_code": (str,), "country": (str,), "is_default": (bool,), "created_at": (str,)}
    assert list(address.fields) == list(address.schemas[1].required)
    load_plan(str(tmp_path / "out" / "plans" / "addresses.yaml"), routes=routes_file)
