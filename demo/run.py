"""`python3 dev.py demo`: migrate, seed and backfill once, run every process, print the URLs; Ctrl-C stops them all.

Processes (each in its own process group, output in var/demo/logs/<name>.log):

* per project (monolith, then each extracted service present): `runserver` (web), `sync_relay` (publishes
  the outbox; the relay polls, so no Celery worker is needed on the embedded default) and `sync_consume`;
* per service with a first copy (catalog): `sync_reconcile` in the monolith, every 30 s (`/sync/reconcile/`);
* the mitmproxy plane (`strangler-proxy run`) in front, reading var/demo/routes.yaml; with `--plane nginx`
  (or DEMO_PLANE=nginx) the nginx plane instead: `strangler-proxy nginx-run` following the route file, its
  metrics exporter on the admin port and the diff endpoint its shadowed reads are mirrored to.

SIGINT (Ctrl-C) and SIGTERM stop every process group; a process that dies while the demo runs is reported
and the rest keep serving (the proxy's fallback covers a dead service, which is worth watching).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path

from demo.stack import PLANES, ROOT, ProjectSpec, Stack, routes_file_ensure, stack_build, state_write
from demo.supervisor import StartupError, Supervisor
from strangler_sync.verify import VERIFY_TOKEN_ENV

SEED_PRODUCTS = 2000
SEED_USERS = 5


class Stop(Exception):
    """SIGTERM arrived: stop like on Ctrl-C."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 dev.py demo", description=__doc__.splitlines()[0])
    parser.add_argument("--port-offset", type=int, default=int(os.environ.get("DEMO_PORT_OFFSET", "0")),
                        help="added to every port (monolith 8000, services 8001.., proxy 8080, admin 8081)")
    parser.add_argument("--products", type=int, default=SEED_PRODUCTS, help="products seeded on the first start")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds to wait for health checks")
    parser.add_argument("--plane", choices=PLANES, default=os.environ.get("DEMO_PLANE") or "mitmproxy",
                        help="the traffic plane in front (default: $DEMO_PLANE, else mitmproxy)")
    return parser


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def _run_each(supervisor: Supervisor, stack: Stack, what: str, commands: dict[str, list[str]]) -> None:
    """Run one short command per project side by side (own databases, so in parallel) and fail on any error."""
    started = time.monotonic()
    running = {
        name: supervisor.start(f"{name}-{what}", argv, env=stack.project_env(_project(stack, name)))
        for name, argv in commands.items()
    }
    failed = []
    for name, child in running.items():
        if child.process.wait() != 0:
            failed.append(f"{name} {what} exited {child.process.returncode}:\n{child.log_tail()}")
    supervisor.children = [c for c in supervisor.children if c not in running.values()]
    if failed:
        raise StartupError("\n".join(failed))
    _say(f"{what}: {', '.join(commands)} ({time.monotonic() - started:.1f}s)")


def _project(stack: Stack, name: str) -> ProjectSpec:
    return next(p for p in stack.projects if p.name == name)


def _count(stack: Stack, base_url: str, aggregate: str) -> int:
    request = urllib.request.Request(f"{base_url}/sync/checksums/{aggregate}/",
                                     headers={"Authorization": f"Bearer {stack.verify_token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(json.load(response)["count"])


def _short(supervisor: Supervisor, stack: Stack, project: ProjectSpec, name: str, *args: str) -> None:
    child = supervisor.start(name, stack.manage(project, *args), env=stack.project_env(project))
    code = child.process.wait()
    supervisor.children.remove(child)
    if code != 0:
        raise StartupError(f"{name} exited {code}:\n{child.log_tail()}")


def _backfill_once(supervisor: Supervisor, stack: Stack, *, timeout: float) -> None:
    """Give each service the first copy of the monolith's aggregates it lacks rows of (``sync_backfill`` into the
    monolith's outbox; its relay and the service's consumer carry it), then wait until it has them all."""
    monolith = stack.projects[0]
    for service in stack.projects[1:]:
        wanted = {a: _count(stack, stack.url(monolith), a) for a in service.backfill}
        missing = [a for a, n in wanted.items() if n and _count(stack, stack.url(service), a) < n]
        if not missing:
            continue
        started = time.monotonic()
        _short(supervisor, stack, monolith, f"backfill-{service.name}", "sync_backfill",
               *[arg for aggregate in missing for arg in ("--aggregate", aggregate)], "--no-progress")
        deadline = time.monotonic() + timeout
        for aggregate, source in wanted.items():
            while (copied := _count(stack, stack.url(service), aggregate)) < source:
                if time.monotonic() > deadline:
                    raise StartupError(f"{service.name} has {copied} of {source} {aggregate} rows after {timeout:.0f}s")
                time.sleep(0.3)
        rows = ", ".join(f"{n} {a}" for a, n in wanted.items())
        _say(f"first copy into {service.name} through the data plane: {rows} ({time.monotonic() - started:.1f}s)")


def _banner(stack: Stack) -> str:
    lines = [
        "",
        f"  shop (through the proxy):  http://127.0.0.1:{stack.proxy_port}/",
        f"  traffic plane:             {stack.plane}",
        f"  proxy metrics / diffs:     http://127.0.0.1:{stack.admin_port}/metrics  " + (
            "/diffs" if stack.plane == "mitmproxy" else f"http://127.0.0.1:{stack.diff_endpoint_port}/diffs"),
    ]
    for project in stack.projects:
        lines.append(f"  {project.name + ':':<26} {stack.url(project)}/  (direct; /healthz /readyz /metrics)")
    lines += [
        f"  API schema:                http://127.0.0.1:{stack.proxy_port}/api/schema/",
        f"  admin (direct, not through the proxy): {stack.url(stack.projects[0])}/admin/  (admin / admin)",
        "  shoppers:                  user1..user5 / password; test card 4242424242424242",
        f"  route file (live):         {stack.routes_path}",
        f"  ownership file:            {stack.ownership_path}",
        f"  logs:                      {stack.log_dir}/",
        f"  sync_verify / plans:       export {VERIFY_TOKEN_ENV}={stack.verify_token}",
        f"  plans' gate source:        export STRANGLER_PROXY_METRICS='{stack.proxy_metrics}'",
        "  Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def demo_run(stack: Stack, *, products: int, ready_timeout: float) -> int:
    busy = [port for port in stack.ports if not _port_free(port)]
    if busy:
        print(f"demo: port(s) {', '.join(map(str, busy))} already in use (another demo running? try --port-offset)",
              file=sys.stderr)
        return 1
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "STRANGLER_VAR_DIR": str(stack.var_dir),
        "STRANGLER_SYNC_RELAY_TRIGGER": "none",  # the sync_relay processes poll the outbox
        "STRANGLER_SYNC_POLL_INTERVAL": os.environ.get("STRANGLER_SYNC_POLL_INTERVAL", "0.2"),
        VERIFY_TOKEN_ENV: stack.verify_token,  # the projects' checksum endpoints and the verify client share it
        "PYTHONUNBUFFERED": "1",
    }
    supervisor = Supervisor(cwd=ROOT, log_dir=stack.log_dir, env=env)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`cmd &`)
    try:
        _say(f"{', '.join(p.name for p in stack.projects)}; var dir {stack.var_dir}")
        _run_each(supervisor, stack, "migrate",
                  {p.name: stack.manage(p, "migrate", "--noinput", "-v", "0") for p in stack.projects})
        monolith = stack.projects[0]
        _run_each(supervisor, stack, "seed", {monolith.name: stack.manage(
            monolith, "seed_storefront", "--products", str(products), "--users", str(SEED_USERS), "--if-empty")})
        _say(f"route file {stack.routes_path}: {routes_file_ensure(stack)}")

        for project in stack.projects:
            project_env = stack.project_env(project)
            supervisor.start(project.name, stack.manage(project, "runserver", "--noreload", f"127.0.0.1:"
                                                        f"{stack.port(project)}"),
                             env=project_env, health_url=f"{stack.url(project)}/readyz")
            # Workers come back after a crash (as `restart: unless-stopped` does in compose); web servers and
            # the proxy do not, so a dead service stays dead and the proxy's fallback is there to see.
            supervisor.start(f"{project.name}-relay", stack.manage(project, "sync_relay"), env=project_env,
                             restart=True)
            supervisor.start(f"{project.name}-consumer", stack.manage(project, "sync_consume"), env=project_env,
                             restart=True)
        for name, (argv, health_url) in stack.proxy_commands().items():
            supervisor.start(name, argv, health_url=health_url)
        started = time.monotonic()
        supervisor.wait_healthy(timeout=ready_timeout)
        _say(f"{len(supervisor.children)} processes healthy ({time.monotonic() - started:.1f}s)")
        _backfill_once(supervisor, stack, timeout=ready_timeout)
        for service in stack.projects[1:]:
            if service.backfill:  # a follower of the monolith's aggregates: reconciled from the owner's side
                aggregates = [arg for name in service.backfill for arg in ("--aggregate", name)]
                supervisor.start(f"{service.name}-reconcile", stack.manage(
                    monolith, "sync_reconcile", *aggregates, "--source", stack.url(monolith), "--follower",
                    stack.url(service), "--every", "30"), env=stack.project_env(monolith), restart=True)
        state_write(stack, pids={c.name: c.pid for c in supervisor.children})
        print(_banner(stack), flush=True)
        _say("ready")
        while True:
            for child in supervisor.exited():
                code = child.process.returncode
                if child.restart and supervisor.restart(child):
                    _say(f"{child.name} exited with code {code}; restarted (see {child.log_path})")
                    state_write(stack, pids={c.name: c.pid for c in supervisor.children})
                    continue
                _say(f"{child.name} exited with code {code}; the rest keep running. "
                     f"Last lines of {child.log_path}:\n{child.log_tail(10)}")
            time.sleep(0.5)
    except (KeyboardInterrupt, Stop):
        print("", flush=True)
        _say("stopping")
        return 0
    except StartupError as exc:
        print(f"demo: could not start: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the cleanup
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        supervisor.stop_all()
        stack.state_path.unlink(missing_ok=True)
        _say(f"stopped {len(supervisor.children)} processes")


def _raise_stop(signum, frame):
    raise Stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    var_dir = Path(os.environ.get("STRANGLER_VAR_DIR") or ROOT / "var")
    stack = stack_build(var_dir=var_dir, port_offset=args.port_offset, plane=args.plane)
    return demo_run(stack, products=args.products, ready_timeout=args.ready_timeout)


if __name__ == "__main__":
    sys.exit(main())
