"""The strangler-proxy command line: exit codes and outputs."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from strangler_proxy.cli import main
from strangler_proxy.loader import DEFAULT_ROUTE_FILE
from strangler_proxy.override import verify_override

ROUTES = """\
upstreams:
  monolith: http://127.0.0.1:8000
  catalog: http://127.0.0.1:8001
monolith: monolith
routes:
  - prefix: /api/products/
    mode: canary
    weight: 50
    service: catalog
    fallback: true
  - prefix: /api/search/
    methods: [GET]
    mode: shadow
    service: catalog
"""


@pytest.fixture
def route_file(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_ok(capsys, route_file):
    code, out, err = run(capsys, "check", route_file)
    assert code == 0 and err == ""
    assert out.startswith(f"ok: {route_file}: 2 upstreams, 2 routes")


def test_check_reports_one_line_and_exit_2(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(ROUTES.replace("weight: 50", "weight: 500"))
    code, out, err = run(capsys, "check", bad)
    assert code == 2 and out == ""
    assert err == f"{bad}:8: routes[0].weight: must be 0..100\n"


def test_check_uses_the_environment_then_the_bundled_file(capsys, monkeypatch, route_file):
    monkeypatch.setenv("STRANGLER_ROUTES", str(route_file))
    assert run(capsys, "check")[1].startswith(f"ok: {route_file}:")
    monkeypatch.delenv("STRANGLER_ROUTES")
    assert run(capsys, "check")[1].startswith(f"ok: {DEFAULT_ROUTE_FILE}:")


def test_entry_point_exit_codes(tmp_path, route_file):
    ok = subprocess.run([sys.executable, "-m", "strangler_proxy", "check", str(route_file)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run([sys.executable, "-m", "strangler_proxy", "check", str(tmp_path / "none.yaml")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith(f"{tmp_path / 'none.yaml'}:0: file:")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_explain_prints_the_decision(capsys, route_file):
    code, out, _ = run(capsys, "explain", "GET", "/api//search/../search/?q=1", "--routes", route_file)
    assert code == 0
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert lines["route"].strip().startswith("/api/search/ (line 11, prefix, mode shadow)")
    assert lines["path"].strip() == "/api/search/"
    assert lines["upstream"].strip() == "monolith"
    assert lines["shadow"].strip() == "catalog"


def test_explain_canary_is_sticky_on_cookie_and_header(capsys, route_file):
    outputs = set()
    for argv in (["--cookie", "strangler_uid=alice"], ["-H", "Cookie: strangler_uid=alice"],
                 ["-H", "X-User-Id: alice", "--client", "10.0.0.9"]):
        code, out, _ = run(capsys, "explain", "GET", "/api/products/1", "--routes", route_file, *argv)
        assert code == 0
        outputs.add(next(line for line in out.splitlines() if line.startswith("bucket:")))
    assert len(outputs) == 1  # the same key, whichever way it came


def test_explain_first_visit_keys_on_the_cookie_it_would_set_and_hides_ops(capsys, route_file):
    code, out, _ = run(capsys, "explain", "GET", "/api/products/1", "--routes", route_file)
    lines = {name: value.strip() for name, value in (line.split(":", 1) for line in out.splitlines())}
    uid = lines["cookie"].removeprefix("sets strangler_uid=")
    code, again, _ = run(capsys, "explain", "GET", "/api/products/1", "--routes", route_file, "--cookie",
                         f"strangler_uid={uid}")
    assert code == 0 and f"bucket:    {lines['bucket']}" in again and "cookie:    -" in again
    code, out, _ = run(capsys, "explain", "GET", "/admin/", "--routes", route_file)
    assert code == 0 and out.startswith("rejected: 404 Not Found")


def test_explain_rejected_path(capsys, route_file):
    code, out, _ = run(capsys, "explain", "GET", "/api/products%2f..%2fadmin", "--routes", route_file)
    assert code == 0 and out.startswith("rejected: 400 Bad Request")


def test_explain_with_signed_override(capsys, monkeypatch, route_file):
    monkeypatch.setenv("STRANGLER_OVERRIDE_SECRET", "k")
    code, out, _ = run(capsys, "token", "catalog", "--routes", route_file)
    assert code == 0 and re.fullmatch(r"X-Strangler-Force: v1\.catalog\.safe\.\d{10}\.[0-9a-f]{64}", out.strip())
    header = out.strip()
    token = header.split(": ", 1)[1]
    assert verify_override("k", token, ["catalog"], method="GET") == "catalog"
    assert verify_override("k", token, ["catalog"], method="POST") is None  # --methods safe by default
    code, out, _ = run(capsys, "token", "catalog", "--methods", "any", "--ttl", "7200", "--routes", route_file)
    assert verify_override("k", out.strip().split(": ", 1)[1], ["catalog"], method="DELETE") == "catalog"
    code, _, err = run(capsys, "token", "catalog", "--ttl", "86400", "--routes", route_file)
    assert code == 2 and err.strip() == "error: --ttl: ttl must be more than 0 and end within 12 hours"
    code, out, _ = run(capsys, "explain", "GET", "/x", "-H", header, "--routes", route_file)
    assert "upstream:  catalog" in out and "override:  yes" in out
    monkeypatch.delenv("STRANGLER_OVERRIDE_SECRET")
    code, out, _ = run(capsys, "explain", "GET", "/x", "-H", header, "--routes", route_file)
    assert "upstream:  monolith" in out and "override:  no" in out


def test_token_needs_the_secret_and_a_known_upstream(capsys, monkeypatch, route_file):
    monkeypatch.delenv("STRANGLER_OVERRIDE_SECRET", raising=False)
    code, _, err = run(capsys, "token", "catalog", "--routes", route_file)
    assert code == 2 and "STRANGLER_OVERRIDE_SECRET" in err
    monkeypatch.setenv("STRANGLER_OVERRIDE_SECRET", "k")
    code, _, err = run(capsys, "token", "nosuch", "--routes", route_file)
    assert code == 2 and "unknown upstream" in err


def test_explain_bad_header_argument(capsys, route_file):
    code, _, err = run(capsys, "explain", "GET", "/", "-H", "no-colon", "--routes", route_file)
    assert code == 2 and "Name: value" in err


def test_table(capsys, route_file):
    code, out, _ = run(capsys, "table", "--routes", route_file)
    assert code == 0
    lines = out.splitlines()
    assert "upstream monolith" in lines[1] and "(monolith)" in lines[1]
    assert lines[3].split()[:6] == ["line", "match", "prefix", "methods", "mode", "service"]
    assert lines[4].split() == ["6", "prefix", "/api/products/", "*", "canary", "catalog", "50%", "-", "yes", "30s"]
    assert lines[5].split()[:5] == ["11", "prefix", "/api/search/", "GET", "shadow"]
    assert "(unmatched)" in lines[6]


def test_render_nginx_prints_and_writes(capsys, tmp_path, route_file):
    code, out, _ = run(capsys, "render-nginx", "--routes", route_file, "--listen", "9123",
                       "--runtime-dir", tmp_path / "rt")
    assert code == 0
    assert "listen 127.0.0.1:9123 default_server;" in out
    assert f"pid {(tmp_path / 'rt').resolve()}/nginx.pid;" in out
    assert 'server_name "localhost" "127.0.0.1" "[::1]";' in out and "return 421" in out
    assert "worker_processes auto;" in out
    code, out, _ = run(capsys, "render-nginx", "--routes", route_file, "--workers", "3")
    assert "worker_processes 3;" in out
    with pytest.raises(SystemExit):
        main(["render-nginx", "--routes", str(route_file), "--workers", "0"])
    code, out, _ = run(capsys, "render-nginx", "--routes", route_file, "--hosts", "shop.example,*")
    assert code == 0 and "return 421" not in out and "server_name _;" in out
    code, out, _ = run(capsys, "render-nginx", "--routes", route_file, "--hosts", "Shop.Example")
    assert 'server_name "shop.example";' in out
    target = tmp_path / "out" / "nginx.conf"
    code, out, _ = run(capsys, "render-nginx", "--routes", route_file, "--out", target, "--runtime-dir", tmp_path)
    assert code == 0 and out.strip() == f"wrote {target}"
    assert "split_clients \"$strangler_key\"" in target.read_text()


def test_bad_route_file_exits_2_for_every_command(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(ROUTES.replace("mode: shadow", "mode: sideways"))
    for argv in (["table"], ["explain", "GET", "/"], ["render-nginx"], ["nginx-reload", "--runtime-dir", tmp_path]):
        code, _, err = run(capsys, *argv, "--routes", bad)
        assert code == 2, argv
        assert err.startswith(f"{bad}:13: routes[1].mode: unknown mode 'sideways'")
