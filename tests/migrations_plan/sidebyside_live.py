"""Live monolith + catalog service for the side-by-side, replay and dashboard tests.

The databases are prepared once per test process (migrate, seed, dumpdata, the service's own import) and
copied for each module, which then starts its own servers: modules can change their copy (e.g. make the
service differ on purpose) without affecting each other.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.extracted.catalog import live
from tests.migrations_plan import procs

SHARED_HOST = live.SHARED_HOST
PRODUCTS = 40


@functools.cache
def _prepared() -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="sbs-prepared-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    quiet = {"STRANGLER_SYNC_RELAY_TRIGGER": "none"}
    monolith_env = live.project_env(workdir=workdir, DATABASE_URL=f"sqlite:///{workdir / 'monolith.sqlite3'}",
                                    **quiet)
    service_env = live.project_env(workdir=workdir, CATALOG_DATABASE_URL=f"sqlite:///{workdir / 'catalog.sqlite3'}",
                                   **quiet)
    dump = workdir / "catalog-dump.json"
    live.manage(live.MONOLITH_MANAGE, "migrate", "--noinput", "-v", "0", env=monolith_env)
    live.manage(live.MONOLITH_MANAGE, "seed_storefront", "--products", str(PRODUCTS), "--users", "1", "--seed", "11",
                env=monolith_env)
    live.manage(live.MONOLITH_MANAGE, "dumpdata", "catalog.category", "catalog.product", "--output", str(dump),
                env=monolith_env)
    live.manage(live.CATALOG_MANAGE, "migrate", "--noinput", "-v", "0", env=service_env)
    live.manage(live.CATALOG_MANAGE, "catalog_import", str(dump), env=service_env)
    return workdir


@dataclass
class LivePair:
    monolith: live.LiveServer
    service: live.LiveServer
    workdir: Path
    product_ids: list[int]

    def stop(self) -> None:
        for server in (self.monolith, self.service):
            server.stop()


def live_pair_start(*, workdir: Path, rename_in_service: dict[int, str] | None = None,
                    monolith_env: dict[str, str] | None = None) -> LivePair:
    """Copy the prepared databases into workdir, optionally rename products in the service's copy, start both."""
    prepared = _prepared()
    for name in ("monolith.sqlite3", "catalog.sqlite3"):
        shutil.copyfile(prepared / name, workdir / name)
    if rename_in_service:
        with sqlite3.connect(workdir / "catalog.sqlite3") as db:
            for product_id, name in rename_in_service.items():
                changed = db.execute("UPDATE catalog_service_product SET name = ? WHERE id = ?", (name, product_id))
                assert changed.rowcount == 1
    quiet = {"STRANGLER_SYNC_RELAY_TRIGGER": "none"}
    m_env = live.project_env(workdir=workdir, DATABASE_URL=f"sqlite:///{workdir / 'monolith.sqlite3'}",
                             **quiet, **(monolith_env or {}))
    s_env = live.project_env(workdir=workdir, CATALOG_DATABASE_URL=f"sqlite:///{workdir / 'catalog.sqlite3'}", **quiet)
    servers = [live.LiveServer(live.MONOLITH_MANAGE, env=m_env, log=workdir / "monolith.log"),
               live.LiveServer(live.CATALOG_MANAGE, env=s_env, log=workdir / "catalog.log")]
    try:
        for server in servers:
            server.wait_ready()
    except Exception:
        for server in servers:
            server.stop()
        raise
    records = json.loads((prepared / "catalog-dump.json").read_text())
    ids = sorted(r["pk"] for r in records if r["model"] == "catalog.product" and r["fields"]["is_active"])
    return LivePair(servers[0], servers[1], workdir, ids)


def proxy_start(*, routes: Path, workdir: Path, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str, str]:
    """`python -m strangler_proxy run` on free ports; returns (process, proxy URL, admin URL)."""
    port, admin_port = live.free_port(), live.free_port()
    log = open(workdir / "proxy.log", "wb")  # noqa: SIM115 - owned by the process for its lifetime
    process = subprocess.Popen(
        [sys.executable, "-m", "strangler_proxy", "run", "--routes", str(routes), "--listen-port", str(port),
         "--admin-port", str(admin_port), "--diffs", str(workdir / "diffs.jsonl"),
         "--set", f"confdir={workdir / 'mitmproxy'}", *extra],
        cwd=live.REPO, env={**os.environ, "PYTHONPATH": str(live.REPO)}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        procs.wait_http(f"http://127.0.0.1:{admin_port}/healthz", process=process)
        procs.wait_http(f"http://127.0.0.1:{port}/healthz", process=process)
    except AssertionError:
        procs.stop(process)
        raise AssertionError((workdir / "proxy.log").read_text(errors="replace")[-3000:]) from None
    return process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
