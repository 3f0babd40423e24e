"""How long the flip waits between the hold and the fence: 0 behind mitmproxy planes only (they send a write the
fence refused again themselves), NGINX_SETTLE_SECONDS when an nginx plane serves the route file (it cannot),
and what $STRANGLER_FLIP_SETTLE_SECONDS says when set (bad values refused)."""

from __future__ import annotations

import os

import pytest

from migrations_plan.errors import ActionFailed
from migrations_plan.ownership_flip import NGINX_SETTLE_SECONDS, SETTLE_ENV, flip_settle_seconds
from strangler_proxy.planes import PlaneRecord, plane_register


@pytest.fixture
def routes(tmp_path, monkeypatch):
    monkeypatch.setenv("STRANGLER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv(SETTLE_ENV, raising=False)
    path = tmp_path / "routes.yaml"
    path.write_text("routes: []\n")
    return path


def _register(kind: str, routes, key: str = "1") -> None:
    plane_register(record=PlaneRecord(kind=kind, routes=str(routes.resolve()), key=key, digest_url=None,
                                      pid=os.getpid() if kind == "mitmproxy" else None))


def test_no_wait_behind_mitmproxy_planes_only(routes):
    assert flip_settle_seconds(routes=routes) == 0.0
    _register("mitmproxy", routes)
    assert flip_settle_seconds(routes=routes) == 0.0


def test_an_nginx_plane_of_the_route_file_makes_the_flip_wait(routes, tmp_path):
    _register("nginx", tmp_path / "other.yaml", key="other")  # another route file's plane does not count
    _register("mitmproxy", routes)
    assert flip_settle_seconds(routes=routes) == 0.0
    _register("nginx", routes)
    assert flip_settle_seconds(routes=routes) == NGINX_SETTLE_SECONDS > 0


def test_the_setting_wins_and_bad_values_are_refused(routes, monkeypatch):
    _register("nginx", routes)
    monkeypatch.setenv(SETTLE_ENV, "0")
    assert flip_settle_seconds(routes=routes) == 0.0
    monkeypatch.setenv(SETTLE_ENV, "2.5")
    assert flip_settle_seconds(routes=routes) == 2.5
    for bad in ("soon", "-1", "61"):
        monkeypatch.setenv(SETTLE_ENV, bad)
        with pytest.raises(ActionFailed, match=SETTLE_ENV):
            flip_settle_seconds(routes=routes)
