"""Fixtures of the control-plane tests: a private state dir and a route file of our own (never the packaged one)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROUTES = """\
# test route file: comments must survive plan edits
upstreams:
  monolith: {monolith}
  catalog: {catalog}
  inventory: http://127.0.0.1:9
  reviews: http://127.0.0.1:9
monolith: monolith
routes:
  - prefix: /api/products/
    mode: monolith
    service: catalog
    fallback: true
    timeout: 5
  - prefix: /api/categories/
    mode: monolith
    service: catalog
    fallback: true
  - prefix: /api/stock/
    service: inventory
  - prefix: /api/reservations/
    service: inventory
  - prefix: /api/reviews/
    service: reviews
"""


def write_routes(path: Path, *, monolith: str = "http://127.0.0.1:9", catalog: str = "http://127.0.0.1:9") -> Path:
    path.write_text(ROUTES.format(monolith=monolith, catalog=catalog))
    return path


@pytest.fixture
def state_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "plans-state"
    monkeypatch.setenv("STRANGLER_PLAN_STATE_DIR", str(path))
    return path


@pytest.fixture
def routes_file(tmp_path) -> Path:
    return write_routes(tmp_path / "routes.yaml")
