"""nginx workers never run as root: a root master renders `user <the invoking user or nobody> <its group>;`, and the
workers can still write the temp files of large bodies and buffered answers (below a 0700 runtime dir)."""

from __future__ import annotations

import json
import os
import pwd

import pytest

from strangler_proxy.loader import parse_route_text
from strangler_proxy.nginx.render import NginxOptions, render_nginx
from tests.strangler_proxy.planes import Client, start_nginx
from tests.strangler_proxy.upstreams import NamedUpstream, free_port

ROUTES = """\
upstreams:
  monolith: {monolith}
monolith: monolith
settings:
  diff_endpoint: 127.0.0.1:{diff_port}
routes: []
"""
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="only a root master switches the workers' user")


def _table(url: str = "http://127.0.0.1:9"):
    return parse_route_text(ROUTES.format(monolith=url, diff_port=free_port()), source="r.yaml")


@root_only
def test_rendering_as_root_never_runs_workers_as_root(tmp_path, monkeypatch):
    monkeypatch.delenv("SUDO_USER", raising=False)
    conf = render_nginx(_table(), NginxOptions(runtime_dir=tmp_path))
    assert "user root" not in conf and "\nuser nobody " in conf
    monkeypatch.setenv("SUDO_USER", "root")  # sudo from root: still not root
    assert "\nuser nobody " in render_nginx(_table(), NginxOptions(runtime_dir=tmp_path))
    other = next(p for p in pwd.getpwall() if p.pw_uid not in (0, 65534) and p.pw_name != "nobody")
    monkeypatch.setenv("SUDO_USER", other.pw_name)
    assert f"\nuser {other.pw_name} " in render_nginx(_table(), NginxOptions(runtime_dir=tmp_path))
    with pytest.raises(ValueError, match="must not run as root"):
        render_nginx(_table(), NginxOptions(runtime_dir=tmp_path, user="root"))


@root_only
@pytest.mark.nginx
def test_workers_as_nobody_write_temp_files_under_a_private_runtime_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("SUDO_USER", raising=False)
    runtime = tmp_path / "nginx"
    runtime.mkdir(mode=0o700)
    monolith = NamedUpstream("monolith")
    port = free_port()
    instance = start_nginx(_table(monolith.url), runtime, port, override_secret=None)
    try:
        body = b"x" * 300_000  # past client_body_buffer_size and the proxy buffers: both go through temp files
        reply = Client(port).send("POST", "/big", headers={"Host": "localhost"}, body=body)
        assert reply.status == 200 and len(json.loads(reply.body)["body"]) == len(body)
        assert "Permission denied" not in (runtime / "error.log").read_text()
    finally:
        instance.stop()
        monolith.close()
