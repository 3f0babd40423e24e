"""`strangler-proxy nginx-reload`: start, reload on a changed route file, and keep the old config on refusal."""

from __future__ import annotations

import time

import pytest

from strangler_proxy.cli import main
from strangler_proxy.nginx.control import NginxInstance
from strangler_proxy.nginx.render import NginxOptions
from tests.strangler_proxy.planes import Client
from tests.strangler_proxy.upstreams import NamedUpstream, free_port
from tests.waiting import WAIT_TIMEOUT

pytestmark = pytest.mark.nginx

ROUTES = """\
upstreams:
  monolith: {monolith}
  catalog: {catalog}
monolith: monolith
settings:
  upstream_allowlist: [no-such-host.invalid]  # allowed, so that nginx is the one refusing it
routes:
  - prefix: /api/products/
    mode: {mode}
    service: catalog
"""


@pytest.fixture
def setup(tmp_path):
    monolith, catalog = NamedUpstream("monolith"), NamedUpstream("catalog")
    route_file = tmp_path / "routes.yaml"
    runtime = tmp_path / "nginx"
    port = free_port()

    def write(mode: str, catalog_url: str = catalog.url) -> None:
        route_file.write_text(ROUTES.format(monolith=monolith.url, catalog=catalog_url, mode=mode))

    def reload(capsys):
        code = main(["nginx-reload", "--routes", str(route_file), "--runtime-dir", str(runtime),
                     "--listen", str(port)])
        out, err = capsys.readouterr()
        return code, out, err

    client = Client(port)
    yield write, reload, client, runtime, catalog
    client.close()
    NginxInstance(NginxOptions(runtime_dir=runtime)).stop()
    monolith.close()
    catalog.close()


def served_by(client: Client, want: str, timeout: float = WAIT_TIMEOUT) -> str | None:
    """Who serves /api/products/ — waiting while old workers of a graceful reload still answer."""
    deadline = time.monotonic() + timeout
    while True:
        got = client.send("GET", "/api/products/1").served_by
        if got == want or time.monotonic() > deadline:
            return got
        client.close()  # a new connection lands on a new worker
        time.sleep(0.05)


def test_reload_starts_then_switches_routes(setup, capsys):
    write, reload, client, runtime, _catalog = setup
    write("monolith")
    code, out, err = reload(capsys)
    assert code == 0, err
    assert out.startswith("started nginx (pid ")
    assert served_by(client, "monolith") == "monolith"
    write("service")
    code, out, err = reload(capsys)
    assert code == 0, err
    assert out.startswith("reloaded nginx (pid ")
    assert served_by(client, "catalog") == "catalog"
    assert not list(runtime.glob("*.candidate")) and not list(runtime.glob(".*.tmp"))


def test_refused_render_keeps_the_running_config(setup, capsys):
    write, reload, client, runtime, _catalog = setup
    write("service")
    assert reload(capsys)[0] == 0
    assert served_by(client, "catalog") == "catalog"
    live_config = (runtime / "nginx.conf").read_text()
    # A route file the loader accepts but nginx refuses: an upstream host that does not resolve.
    write("monolith", catalog_url="http://no-such-host.invalid:8001")
    code, out, err = reload(capsys)
    assert code == 1 and out == ""
    assert "running one is unchanged" in err and "host not found" in err
    assert len(err.strip().splitlines()) == 1
    assert (runtime / "nginx.conf").read_text() == live_config
    assert not list(runtime.glob("*.candidate"))
    client.close()
    assert client.send("GET", "/api/products/1").served_by == "catalog"  # still the old config


def test_nginx_stop(setup, capsys):
    write, reload, _client, runtime, _catalog = setup
    write("monolith")
    assert reload(capsys)[0] == 0
    pid = NginxInstance(NginxOptions(runtime_dir=runtime)).master_pid()
    assert main(["nginx-stop", "--runtime-dir", str(runtime)]) == 0
    assert capsys.readouterr().out.strip() == f"stopped nginx (pid {pid})"
    assert NginxInstance(NginxOptions(runtime_dir=runtime)).master_pid() is None


def test_a_stale_pid_file_is_not_mistaken_for_nginx(tmp_path):
    import os

    runtime = tmp_path / "nginx"
    runtime.mkdir()
    (runtime / "nginx.pid").write_text(f"{os.getpid()}\n")  # alive, but pytest, not nginx
    assert NginxInstance(NginxOptions(runtime_dir=runtime)).master_pid() is None
    (runtime / "nginx.pid").write_text("garbage")
    assert NginxInstance(NginxOptions(runtime_dir=runtime)).master_pid() is None


def test_check_with_nginx_runs_nginx_t_on_the_render(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(ROUTES.format(monolith="http://127.0.0.1:8000", catalog="http://127.0.0.1:8001", mode="canary\n"
                                  "    weight: 5"))
    assert main(["check", "--nginx", str(good)]) == 0
    assert capsys.readouterr().out.strip().endswith("; nginx -t accepts the rendered config")
    bad = tmp_path / "bad.yaml"
    bad.write_text(ROUTES.format(monolith="http://127.0.0.1:8000", catalog="http://no-such-host.invalid:8001",
                                 mode="service"))
    assert main(["check", str(bad)]) == 0  # the loader alone cannot know
    capsys.readouterr()
    assert main(["check", "--nginx", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}: nginx refuses the rendered config:") and "host not found" in err
