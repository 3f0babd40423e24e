"""The rendered nginx in front of the real monolith process (Django under gunicorn): Host, request ids, 404s."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from strangler_proxy.loader import parse_route_text
from strangler_proxy.nginx.control import NginxInstance
from strangler_proxy.nginx.render import NginxOptions
from tests.strangler_proxy.planes import Client, start_nginx, stop_process, wait_for_port
from tests.strangler_proxy.upstreams import NamedUpstream, free_port

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.nginx


@pytest.fixture
def monolith_behind_nginx(tmp_path):
    with contextlib.ExitStack() as stack:
        port = free_port()
        env = {**os.environ, "STRANGLER_VAR_DIR": str(tmp_path / "var"), "DEBUG": "0", "SECRET_KEY": "t" * 50,
               "DJANGO_SETTINGS_MODULE": "monolith.settings", "LOG_LEVEL": "WARNING"}
        env.pop("DATABASE_URL", None)  # /healthz needs no database; keep the run independent of the CI pass
        gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "monolith.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1",
             "--no-control-socket", "--log-level", "warning"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        stack.callback(stop_process, gunicorn)
        wait_for_port(port, timeout=30)
        catalog = NamedUpstream("catalog")
        stack.callback(catalog.close)
        table = parse_route_text(
            f"upstreams:\n  monolith: http://127.0.0.1:{port}\n  catalog: {catalog.url}\nmonolith: monolith\n"
            "routes:\n  - prefix: /api/products/\n    mode: service\n    service: catalog\n",
            source="demo.yaml",
        )
        proxy_port = free_port()
        stack.callback(NginxInstance(NginxOptions(runtime_dir=tmp_path / "nginx")).stop)
        start_nginx(table, tmp_path / "nginx", proxy_port, override_secret=None)
        client = Client(proxy_port)
        stack.callback(client.close)
        yield client


def test_monolith_answers_through_nginx_with_one_request_id(monolith_behind_nginx):
    client = monolith_behind_nginx
    deadline = time.monotonic() + 20
    while (reply := client.send("GET", "/healthz", {"X-Request-ID": "smoke-1"})).status != 200:
        assert time.monotonic() < deadline, reply
        time.sleep(0.1)
    assert json.loads(reply.body) == {"status": "ok"}
    assert (reply.upstream_header, reply.route_header) == ("monolith", "default")
    assert [v for k, v in reply.header_list if k.lower() == "x-request-id"] == ["smoke-1"]
    # Django sees the client's Host (127.0.0.1:port), which ALLOWED_HOSTS accepts
    assert client.send("GET", "/healthz", {"Host": "localhost"}).status == 200
    reply = client.send("GET", "/api/products/1/")
    assert (reply.status, reply.served_by) == (200, "catalog")
