"""Plans drive the nginx plane: a step's route edits are rendered, tested, swapped and reloaded into the running
nginx (and undone when it does not take them); `strangler-proxy status` says which planes serve the file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from migrations_plan.errors import ActionFailed
from migrations_plan.loader import load_plan
from migrations_plan.services import plan_advance, plan_rollback
from migrations_plan.state import history_read, state_load
from strangler_proxy.loader import load_route_file
from strangler_proxy.nginx.control import NginxInstance
from strangler_proxy.nginx.render import NginxOptions
from strangler_proxy.planes import PlaneError, planes_follow, planes_for
from tests.strangler_proxy.planes import Client, wait_for_port
from tests.strangler_proxy.upstreams import NamedUpstream, free_port
from tests.waiting import wait_until

from .conftest import write_routes
from .procs import REPO

pytestmark = pytest.mark.nginx

PLAN = """\
plan: nginxplan
service: catalog
routes: [/api/products/]
proxy_metrics: http://127.0.0.1:9/metrics
steps:
  - name: retire
    kind: retire
    actions:
      - route: /api/products/
        set: {mode: service}
    gates: {min_soak_seconds: 0}
"""


@pytest.fixture
def nginx_plane(tmp_path, monkeypatch):
    monkeypatch.setenv("STRANGLER_VAR_DIR", str(tmp_path / "var"))
    monolith, catalog = NamedUpstream("monolith"), NamedUpstream("catalog")
    routes = write_routes(tmp_path / "routes.yaml", monolith=monolith.url, catalog=catalog.url)
    port, admin = free_port(), free_port()
    instance = NginxInstance(NginxOptions(runtime_dir=tmp_path / "nginx", listen=f"127.0.0.1:{port}",
                                          admin_listen=f"127.0.0.1:{admin}"))
    instance.reload(load_route_file(routes))
    wait_for_port(port)
    yield routes, instance, Client(port)
    instance.stop()
    monolith.close()
    catalog.close()


def served_by(instance: NginxInstance) -> str | None:
    """Who answers on a new connection."""
    client = Client(int(instance.options.listen.rsplit(":", 1)[1]))
    try:
        return client.send("GET", "/api/products/").served_by
    finally:
        client.close()


def status(routes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "strangler_proxy", "status", str(routes)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env=os.environ)


def test_a_step_and_its_rollback_reload_the_running_nginx(tmp_path, nginx_plane, state_dir):
    routes, instance, client = nginx_plane
    assert client.send("GET", "/api/products/").served_by == "monolith"
    shown = status(routes)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"nginx     {instance.prefix}  current" in shown.stdout

    (tmp_path / "plan.yaml").write_text(textwrap.dedent(PLAN))
    plan = load_plan(str(tmp_path / "plan.yaml"), routes=routes)
    pid = instance.master_pid()
    plan_advance(plan=plan, routes=routes, actor="alice")
    assert status(routes).returncode == 0  # nginx answered the new digest before advance returned
    # old workers finish what they hold (and may take a connection until they see the reload): new connections
    wait_until(lambda: served_by(instance) == "catalog", what="new connections to reach the catalog")
    assert instance.master_pid() == pid  # reloaded gracefully, not restarted

    plan_rollback(plan=plan, routes=routes, actor="alice", reason="test")
    assert status(routes).returncode == 0
    wait_until(lambda: served_by(instance) == "monolith", what="new connections to reach the monolith")

    routes.write_text(routes.read_text().replace("timeout: 5", "timeout: 6"))  # edited behind nginx's back
    shown = status(routes)
    assert shown.returncode == 1 and "STALE: serves" in shown.stdout


def test_a_reload_that_fails_undoes_the_step(tmp_path, nginx_plane, state_dir):
    routes, instance, client = nginx_plane
    (tmp_path / "plan.yaml").write_text(textwrap.dedent(PLAN))
    plan = load_plan(str(tmp_path / "plan.yaml"), routes=routes)
    before = routes.read_text()
    # nginx died (not stopped: still registered) and something else took its port: it cannot start again.
    os.kill(instance.master_pid(), signal.SIGQUIT)
    wait_until(lambda: instance.master_pid() is None, what="nginx to exit")
    host, port = instance.options.listen.rsplit(":", 1)
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind((host, int(port)))
    squatter.listen()
    try:
        with pytest.raises(ActionFailed, match="Address already in use.*route file is restored"):
            plan_advance(plan=plan, routes=routes, actor="alice")
    finally:
        squatter.close()
    assert routes.read_text() == before
    state = state_load(plan="nginxplan")
    assert state is None or state.applied == []
    assert history_read(plan="nginxplan")[-1]["result"] == "failed"
    assert [r.kind for r in planes_for(routes=routes)] == ["nginx"]


def test_status_without_a_plane_says_so(tmp_path, routes_file, monkeypatch):
    monkeypatch.setenv("STRANGLER_VAR_DIR", str(tmp_path / "var"))
    shown = status(routes_file)
    assert shown.returncode == 1 and "no running plane serves this file" in shown.stdout


def test_both_planes_of_one_file_follow_a_step_and_status_lists_both(tmp_path, nginx_plane, state_dir):
    routes, instance, _ = nginx_plane
    port, admin = free_port(), free_port()
    log = open(tmp_path / "mitmdump.log", "wb")  # noqa: SIM115 - owned by the process
    mitmdump = subprocess.Popen(
        [sys.executable, "-m", "strangler_proxy", "run", "--routes", str(routes), "--listen-port", str(port),
         "--admin-port", str(admin), "--diffs", str(tmp_path / "diffs.jsonl"),
         "--set", f"confdir={tmp_path / 'mitmproxy'}"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: len(planes_for(routes=routes)) == 2, what="the mitmproxy plane to register")
        shown = status(routes)
        assert shown.returncode == 0, shown.stdout
        assert f"mitmproxy 127.0.0.1:{admin}  current" in shown.stdout

        (tmp_path / "plan.yaml").write_text(textwrap.dedent(PLAN))
        plan = load_plan(str(tmp_path / "plan.yaml"), routes=routes)
        plan_advance(plan=plan, routes=routes, actor="alice")
        assert status(routes).returncode == 0  # both answered the new digest before advance returned
        assert Client(port).send("GET", "/api/products/").served_by == "catalog"
        wait_until(lambda: served_by(instance) == "catalog", what="new nginx connections to reach the catalog")
    finally:
        mitmdump.terminate()
        mitmdump.wait(timeout=60)
        log.close()
    wait_until(lambda: [r.kind for r in planes_for(routes=routes)] == ["nginx"], what="mitmproxy to unregister")


def test_a_plane_that_follows_its_file_takes_the_step_without_the_control_plane_touching_it(tmp_path, state_dir,
                                                                                            monkeypatch):
    """`strangler-proxy nginx-run` (the compose proxy's command): the plan only edits the file and waits for the
    digest; a file nginx refuses fails the wait at once with nginx's reason, and the old config keeps serving."""
    monkeypatch.setenv("STRANGLER_VAR_DIR", str(tmp_path / "var"))
    monolith, catalog = NamedUpstream("monolith"), NamedUpstream("catalog")
    routes = write_routes(tmp_path / "routes.yaml", monolith=monolith.url, catalog=catalog.url)
    port, admin = free_port(), free_port()
    log = open(tmp_path / "nginx-run.log", "wb")  # noqa: SIM115 - owned by the process
    plane = subprocess.Popen(
        [sys.executable, "-m", "strangler_proxy", "nginx-run", "--routes", str(routes), "--listen",
         f"127.0.0.1:{port}", "--admin-listen", f"0.0.0.0:{admin}", "--admin-url", f"http://localhost:{admin}",
         "--runtime-dir", str(tmp_path / "nginx"), "--workers", "1", "--poll", "0.2"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
    instance = NginxInstance(NginxOptions(runtime_dir=tmp_path / "nginx", listen=f"127.0.0.1:{port}"))
    try:
        (record,) = wait_until(lambda: planes_for(routes=routes), what="the following plane to register")
        assert record.reloads_itself and record.digest_url == f"http://localhost:{admin}/strangler/digest"
        wait_for_port(port)
        master = wait_until(instance.master_pid, what=lambda: f"nginx's pid file:\n{_text(tmp_path / 'nginx-run.log')}")
        assert _parent(master) == plane.pid  # nginx runs in the foreground under nginx-run

        (tmp_path / "plan.yaml").write_text(textwrap.dedent(PLAN))
        plan = load_plan(str(tmp_path / "plan.yaml"), routes=routes)
        plan_advance(plan=plan, routes=routes, actor="alice")
        assert status(routes).returncode == 0  # the plane answered the new digest before advance returned
        wait_until(lambda: served_by(instance) == "catalog", what="new connections to reach the catalog")
        assert instance.master_pid() == master  # reloaded by its own follower, gracefully

        # a file the loader takes but nginx refuses (an upstream host that does not resolve)
        routes.write_text(routes.read_text().replace(catalog.url, "http://no-such-host.invalid:81")
                          + "settings: {upstream_allowlist: [no-such-host.invalid]}\n")
        with pytest.raises(PlaneError, match="refused .*host not found"):
            planes_follow(routes=routes, timeout=60)
        assert "STALE: serves" in status(routes).stdout
        assert served_by(instance) == "catalog"  # the running config keeps serving

        plane.send_signal(signal.SIGTERM)
        assert plane.wait(timeout=60) == 0
        assert planes_for(routes=routes) == [] and instance.master_pid() is None
    finally:
        if plane.poll() is None:
            plane.kill()
            plane.wait(timeout=30)
            instance.stop()
        log.close()
        monolith.close()
        catalog.close()


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _text(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]
