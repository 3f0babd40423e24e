#!/usr/bin/env python3
"""Identity at the edge: what the identity lookup costs per request on each plane, cached and uncached, side by side.

    flock /tmp/strangler-bench.lock .venv/bin/python bench/identity_bench.py [--rounds 3] [--requests 300]

A real monolith (gunicorn, SQLite, one seeded user with a session) answers the identity endpoint; the "service" is
a fixed-body nginx (proxy_bench.start_upstream), so the rows differ only in the lookup. Every request carries the
monolith's session cookie. Rows, per plane (nginx rendered from the route file; mitmproxy `strangler-proxy run`):
  - off: no settings.identity (the client's identity header is only stripped);
  - cached: identity on, cache_ttl 60 (one lookup, then the cache: mitmproxy's in-memory LRU, nginx's proxy_cache);
  - uncached: identity on, cache_ttl 0 (every request asks the monolith: Django + a session row read).
Each round measures every row in turn (interleaved, so a noisy neighbour hits all rows alike): the p50/p90 latency
of sequential requests on one keep-alive connection (the cost one request pays) and the throughput of 4 concurrent
connections. The table shows medians over rounds; "+p50" is the median of the per-round differences to the plane's
"off" row. Writes bench/results/identity.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from proxy_bench import free_port, start_upstream, stop, wait_for  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "identity.json"
PATH = "/api/products/1/"
ROUTES = """\
upstreams:
  monolith: http://127.0.0.1:{monolith}
  catalog: http://127.0.0.1:{service}
monolith: monolith
settings:
  access_log: "off"
{identity}
routes:
  - prefix: /api/products/
    mode: service
    service: catalog
"""
IDENTITY = {"off": "", "cached": "  identity:\n    upstreams: [catalog]\n    cache_ttl: 60\n",
            "uncached": "  identity:\n    upstreams: [catalog]\n    cache_ttl: 0\n"}
SESSION = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
user = get_user_model().objects.create_user("bench", password="bench-pass-1")
session = SessionStore()
session.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                HASH_SESSION_KEY: user.get_session_auth_hash()})
session.create()
print(session.session_key)
"""


def project_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(STRANGLER_VAR_DIR=str(workdir / "var"), DATABASE_URL=f"sqlite:///{workdir / 'monolith.sqlite3'}",
               DEBUG="0", SECRET_KEY="bench-" + "s" * 40, STRANGLER_IDENTITY_KEY="bench-identity-" + "k" * 32,
               ALLOWED_HOSTS="localhost,127.0.0.1", LOG_LEVEL="WARNING", STRANGLER_SYNC_RELAY_TRIGGER="none",
               DJANGO_SETTINGS_MODULE="monolith.settings")
    return env


def start_monolith(workdir: Path) -> tuple[subprocess.Popen, int, str]:
    env = project_env(workdir)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True, cwd=ROOT)
    session = subprocess.run([*manage, "shell", "-c", SESSION], env=env, check=True, cwd=ROOT, capture_output=True,
                             text=True).stdout.split()[-1]
    port = free_port()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    process = subprocess.Popen([gunicorn, "-w", "2", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                                "monolith.wsgi"], env=env, cwd=ROOT, stdout=(workdir / "monolith.log").open("wb"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(port, timeout=60, process=process)
    return process, port, session


def start_plane(plane: str, row: str, workdir: Path, monolith: int, service: int) -> tuple[int, callable]:
    from strangler_proxy.loader import load_route_file
    from strangler_proxy.nginx.control import NginxInstance
    from strangler_proxy.nginx.render import NginxOptions

    where = workdir / f"{plane}-{row}"
    where.mkdir()
    routes = where / "routes.yaml"
    routes.write_text(ROUTES.format(monolith=monolith, service=service, identity=IDENTITY[row]))
    port = free_port()
    if plane == "nginx":
        instance = NginxInstance(NginxOptions(runtime_dir=where / "run", listen=f"127.0.0.1:{port}",
                                              metrics_log=False))
        instance.reload(load_route_file(routes))
        wait_for(port)
        return port, instance.stop
    process = subprocess.Popen(
        [sys.executable, "-m", "strangler_proxy", "run", "--routes", str(routes), "--listen-port", str(port),
         "--admin-port", "0", "--diffs", "", "--set", f"confdir={where / 'mitmproxy'}"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=(where / "mitmdump.log").open("wb"),
        stderr=subprocess.STDOUT)
    wait_for(port, timeout=60, process=process)
    return port, lambda: stop(process)


def request_once(connection: http.client.HTTPConnection, headers: dict[str, str]) -> int:
    connection.request("GET", PATH, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def sequential(port: int, headers: dict[str, str], count: int) -> tuple[float, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(5):  # warm: connections, and the cached rows' one lookup
        assert request_once(connection, headers) == 200
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        status = request_once(connection, headers)
        latencies.append((time.perf_counter() - started) * 1000)
        assert status == 200, status
    connection.close()
    latencies.sort()
    return statistics.median(latencies), latencies[int(len(latencies) * 0.9)]


def concurrent(port: int, headers: dict[str, str], seconds: float, connections: int = 4) -> float:
    done = [0] * connections
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < deadline:
            if request_once(connection, headers) == 200:
                done[index] += 1
        connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per row and round")
    parser.add_argument("--seconds", type=float, default=3.0, help="concurrent load per row and round")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="identity-bench-"))
    stops = []
    try:
        monolith, monolith_port, session = start_monolith(workdir)
        stops.append(lambda: stop(monolith))
        service_port, stop_service, service_kind = start_upstream(workdir)
        stops.append(stop_service)
        headers = {"Host": "localhost", "Cookie": f"sessionid={session}"}
        rows = {}
        for plane in ("nginx", "mitmproxy"):
            for row in IDENTITY:
                port, stopper = start_plane(plane, row, workdir, monolith_port, service_port)
                stops.append(stopper)
                rows[(plane, row)] = port
        samples: dict[tuple[str, str], list[tuple[float, float, float]]] = {key: [] for key in rows}
        for round_index in range(args.rounds):
            for key, port in rows.items():
                p50, p90 = sequential(port, headers, args.requests)
                rps = concurrent(port, headers, args.seconds)
                samples[key].append((p50, p90, rps))
            print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)
        table = []
        for (plane, row), values in samples.items():
            off = samples[(plane, "off")]
            table.append({
                "plane": plane, "row": row,
                "p50_ms": statistics.median(v[0] for v in values),
                "p90_ms": statistics.median(v[1] for v in values),
                "req_per_s_4_conn": statistics.median(v[2] for v in values),
                "added_p50_ms": statistics.median(v[0] - o[0] for v, o in zip(values, off, strict=True)),
                "throughput_vs_off": statistics.median(v[2] / o[2] for v, o in zip(values, off, strict=True)),
            })
        print(f"{'plane':<10} {'identity':<9} {'p50 ms':>8} {'p90 ms':>8} {'+p50 ms':>8} {'req/s (4 conn)':>15} "
              f"{'vs off':>7}")
        for r in table:
            print(f"{r['plane']:<10} {r['row']:<9} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} {r['added_p50_ms']:>8.2f} "
                  f"{r['req_per_s_4_conn']:>15.0f} {r['throughput_vs_off']:>6.0%}")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({
            "command": "bench/identity_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version()},
            "service": service_kind, "rounds": args.rounds, "requests": args.requests, "rows": table,
        }, indent=1) + "\n")
        return 0
    finally:
        for stopper in reversed(stops):
            try:
                stopper()
            except Exception:  # noqa: BLE001 - stop the rest anyway
                pass


if __name__ == "__main__":
    raise SystemExit(main())
