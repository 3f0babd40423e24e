"""Performance settings of the rendered nginx config: regexes are JIT-compiled, and this nginx really can."""

from __future__ import annotations

import subprocess

import pytest

from strangler_proxy.loader import DEFAULT_ROUTE_FILE, load_route_file
from strangler_proxy.nginx.control import nginx_binary
from strangler_proxy.nginx.render import NginxOptions, render_nginx


def test_rendered_config_compiles_its_regexes_once():
    text = render_nginx(load_route_file(DEFAULT_ROUTE_FILE), NginxOptions(runtime_dir="/tmp/unused"))
    main_context = text.split("events {", 1)[0]
    assert "\npcre_jit on;" in main_context


@pytest.mark.nginx
def test_nginx_accepts_pcre_jit_without_falling_back(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    conf = run / "nginx.conf"
    conf.write_text(render_nginx(load_route_file(DEFAULT_ROUTE_FILE), NginxOptions(runtime_dir=run, user=None)))
    result = subprocess.run([nginx_binary(), "-t", "-p", f"{run}/", "-c", str(conf)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "JIT" not in result.stderr  # nginx warns ("does not support JIT") and interprets instead
