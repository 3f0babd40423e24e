"""`strangler-proxy run`: start mitmdump in reverse mode with the strangler addon; Ctrl-C stops it.

The reverse-mode target is the monolith, but every flow is pointed at its upstream by the addon, and
connections are opened lazily, so the target only matters for traffic the addon sends there anyway.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from servicekit.optional import optional_import
from servicekit.tracing import tracing_wanted

ADDON_PATH = Path(__file__).resolve().parent / "addon.py"
PROJECT_ROOT = ADDON_PATH.parent.parent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--routes", metavar="FILE", default=None,
                        help="route file (default: $STRANGLER_ROUTES, else strangler_proxy/routes.yaml)")
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument("--listen-port", type=int, default=8080)
    parser.add_argument("--admin-port", type=int, default=8081, help="/metrics and /diffs; 0 = off")
    parser.add_argument("--hosts", default=None,
                        help="comma-separated Host names clients may use (default: localhost, 127.0.0.1, [::1])")
    parser.add_argument("--record", metavar="PATH", default="", help="append every exchange to this JSON-lines file")
    parser.add_argument("--diffs", metavar="PATH", default=None,
                        help="JSON-lines sample of shadow differences (default: $STRANGLER_VAR_DIR/proxy/diffs.jsonl)")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="OPTION=VALUE",
                        help="any other mitmproxy option, passed through")


def mitmdump_command(args: argparse.Namespace, monolith_url: str, routes_path: str) -> list[str]:
    optional_import("mitmproxy", extra="proxy", needed_for="strangler-proxy run")  # the addon runs inside mitmdump
    if tracing_wanted():  # ProxyTracing turns it on inside mitmdump: say here, in one line, what is missing
        optional_import("opentelemetry.sdk.trace", extra="otel", needed_for="strangler-proxy run with OTEL_* set")
    executable = shutil.which("mitmdump", path=str(Path(sys.executable).parent)) or shutil.which("mitmdump")
    if executable:
        base = [executable]
    else:
        base = [sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()"]
    options = {
        "strangler_routes": routes_path,
        "strangler_admin_port": str(args.admin_port),
        "strangler_record": args.record,
        "keep_host_header": "true",  # the addon checks the Host the client sent, then sets the upstream's
        "connection_strategy": "lazy",
        "flow_detail": "0",  # one access line per flow is the addon's job (recording); keep the console quiet
        "termlog_verbosity": "warn",  # connection chatter costs CPU; reloads, breakers and errors still show
    }
    if args.hosts:
        options["strangler_hosts"] = args.hosts
    if args.diffs is None:
        from servicekit.env import VAR_DIR

        options["strangler_diffs"] = str(VAR_DIR / "proxy" / "diffs.jsonl")
    else:
        options["strangler_diffs"] = args.diffs
    for extra in args.extra:  # --set NAME=VALUE wins over the defaults above (mitmdump refuses a name twice)
        name, sep, value = extra.partition("=")
        if not sep:
            raise SystemExit(f"strangler-proxy run: --set expects NAME=VALUE, got {extra!r}")
        options[name.strip()] = value
    command = [*base, "--mode", f"reverse:{monolith_url}", "--listen-host", args.listen_host,
               "--listen-port", str(args.listen_port), "-s", str(ADDON_PATH)]
    for name, value in options.items():
        command += ["--set", f"{name}={value}"]
    return command


def main(args: argparse.Namespace) -> int:
    from strangler_proxy.loader import load_route_file, route_file_path

    routes_path = route_file_path(args.routes).resolve()
    table = load_route_file(routes_path)  # a bad file fails here with file:line: field: message
    command = mitmdump_command(args, table.upstreams[table.monolith].url, str(routes_path))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                                    os.environ.get("PYTHONPATH")]))}
    print(f"strangler-proxy: http://{args.listen_host}:{args.listen_port}/ -> {len(table.routes)} routes from "
          f"{routes_path}" + (f"; admin http://127.0.0.1:{args.admin_port}/metrics" if args.admin_port else ""),
          flush=True)
    process = subprocess.Popen(command, env=env)
    signal.signal(signal.SIGTERM, lambda *_: process.terminate())  # never leave mitmdump behind
    try:
        return process.wait()
    except KeyboardInterrupt:
        # The terminal sent SIGINT to mitmdump too; give it a moment to shut down cleanly.
        try:
            return process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            return process.wait()
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait()
