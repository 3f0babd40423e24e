"""Where the addon's CPU per request goes, compared with another checkout's addon: cProfile inside both mitmdumps.

    python bench/proxy_profile.py --base-addon DIR/strangler_proxy/addon.py [--mode service|monolith]

Both mitmdumps run side by side on one upstream (bench/proxy_bench.py's), each with a small profiling addon loaded
before the strangler addon; wrk bursts alternate between them so both see the same machine load. The profiler
covers the event-loop thread from request --warm to --warm + --requests. Printed per request: Python calls (exact,
independent of load), tottime grouped (mitmproxy's addon dispatch, mitmproxy's dataclass type checks, this
project's own lines, the rest) and the functions that differ most. Profiled times are inflated for Python code, so
read them as a relative comparison; CPU targets are measured by bench/proxy_bench.py without a profiler.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import proxy_bench  # noqa: E402  (this folder's bench: its upstream, route files, client headers)

PROFILER_ADDON = '''\
"""Profiles the event-loop thread from request WARM to WARM + N, then writes the stats to OUT."""
import cProfile
import os

WARM, N, OUT = int(os.environ["PROFILE_WARM"]), int(os.environ["PROFILE_N"]), os.environ["PROFILE_OUT"]


class Profiler:
    def __init__(self):
        self.seen = 0
        self.profile = cProfile.Profile()

    def requestheaders(self, flow):
        self.seen += 1
        if self.seen == WARM:
            self.profile.enable()
        elif self.seen == WARM + N:
            self.profile.disable()
            self.profile.dump_stats(OUT)


addons = [Profiler()]
'''

GROUPS = (
    ("mitmproxy addon dispatch", lambda f, fn: "addonmanager.py" in f or "mitmproxy/hooks.py" in f
     or (fn == "fields" and "dataclasses.py" in f) or fn == "<built-in method builtins.hasattr>"),
    ("mitmproxy dataclass type checks", lambda f, fn: "typecheck.py" in f or "typing.py" in f
     or ("mitmproxy/http.py" in f and fn == "__post_init__")),
    ("this project's own lines", lambda f, fn: "strangler_proxy" in f or "servicekit" in f),
)


def start(workdir: Path, upstream_port: int, addon: Path, name: str, mode: str, args) -> tuple:
    base = addon != proxy_bench.ROOT / "strangler_proxy" / "addon.py"
    routes = proxy_bench.route_file(workdir, upstream_port, mode, name, base=base)
    project = addon.parent.parent
    port = proxy_bench.free_port()
    mitmdump = shutil.which("mitmdump", path=str(Path(sys.executable).parent)) or "mitmdump"
    command = [mitmdump, "--mode", f"reverse:http://127.0.0.1:{upstream_port}", "--listen-host", "127.0.0.1",
               "--listen-port", str(port), "-q", "--set", "connection_strategy=lazy", "--set",
               "keep_host_header=true", "--set", f"confdir={workdir / 'mitmproxy'}",
               "-s", str(workdir / "profiler.py"), "-s", str(addon), "--set", f"strangler_routes={routes}",
               "--set", f"strangler_diffs={workdir / name}.jsonl"]
    out = workdir / f"{name}.prof"
    env = {**os.environ, "PYTHONPATH": str(project), "PROFILE_OUT": str(out), "PROFILE_N": str(args.requests),
           "PROFILE_WARM": str(args.warm)}
    process = subprocess.Popen(command, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
    proxy_bench.wait_for(port, process=process)
    headers = proxy_bench.row_headers(name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if proxy_bench.probe(port, headers)[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.2)
    else:
        raise RuntimeError(f"{name}: mitmdump on port {port} never answered 200")
    return process, port, out


def burst(port: int, name: str, seconds: int) -> None:
    header_args = [arg for key, value in proxy_bench.row_headers(name).items() for arg in ("-H", f"{key}: {value}")]
    subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", "-H", "Host: localhost", *header_args,
                    f"http://127.0.0.1:{port}{proxy_bench.PATH}"], stdout=subprocess.DEVNULL, check=True)


def summary(path: Path, requests: int) -> dict:
    stats = pstats.Stats(str(path)).stats
    groups = {name: 0.0 for name, _ in GROUPS} | {"the rest": 0.0}
    functions: dict[str, tuple[float, float]] = {}
    calls = 0
    for (file, _line, fn), (_, ncalls, tottime, _, _) in stats.items():
        if fn.startswith("<method 'poll'"):  # waiting for the network, not work
            continue
        calls += ncalls
        group = next((name for name, match in GROUPS if match(file, fn)), "the rest")
        groups[group] += tottime
        key = f"{file.split('site-packages/')[-1].split('/')[-1]}:{re.sub(r' at 0x[0-9a-f]+', '', fn)}"
        previous = functions.get(key, (0, 0.0))
        functions[key] = (previous[0] + ncalls, previous[1] + tottime)
    per = 1e6 / requests
    return {"calls_per_request": calls / requests, "groups_us": {k: v * per for k, v in groups.items()},
            "functions": {k: (n / requests, t * per) for k, (n, t) in functions.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-addon", required=True, metavar="ADDON_PY", help="the other checkout's addon.py")
    parser.add_argument("--mode", choices=("service", "monolith"), default="service", help="the route profiled")
    parser.add_argument("--requests", type=int, default=3000, help="requests profiled per addon")
    parser.add_argument("--warm", type=int, default=300, help="requests before the profiler starts")
    parser.add_argument("--top", type=int, default=25, help="functions shown")
    parser.add_argument("--out", default="", help="write the summary as JSON here too")
    args = parser.parse_args(argv)
    base = Path(args.base_addon).resolve()
    if not base.is_file() or shutil.which("wrk") is None:
        parser.error(f"needs wrk on PATH and an addon file: {base}")
    workdir = Path(tempfile.mkdtemp(prefix="proxy-profile-"))
    (workdir / "profiler.py").write_text(PROFILER_ADDON)
    upstream_port, stop_upstream, _ = proxy_bench.start_upstream(workdir)
    running = []
    try:
        for name, addon in (("base", base), ("addon", proxy_bench.ROOT / "strangler_proxy" / "addon.py")):
            running.append((name, *start(workdir, upstream_port, addon, name, args.mode, args)))
        deadline = time.monotonic() + 600
        while not all(out.exists() for _, _, _, out in running):
            if time.monotonic() > deadline:
                raise RuntimeError("the profiled requests did not all arrive within 600 s")
            for name, _, port, out in running:
                if not out.exists():
                    burst(port, name, 2)
        time.sleep(0.5)  # dump_stats has finished writing
        result = {name: summary(out, args.requests) for name, _, _, out in running}
    finally:
        for _, process, _, _ in running:
            proxy_bench.stop(process)
        stop_upstream()
        shutil.rmtree(workdir, ignore_errors=True)
    b, a = result["base"], result["addon"]
    print(f"{args.mode} route, {args.requests} requests profiled per addon, load average {os.getloadavg()[0]:.2f}")
    print(f"python calls per request: base {b['calls_per_request']:.1f}, addon {a['calls_per_request']:.1f}")
    print(f"{'profiled tottime, us per request':<36} | {'base':>8} | {'addon':>8} | {'delta':>7}")
    for group in b["groups_us"]:
        print(f"{group:<36} | {b['groups_us'][group]:8.1f} | {a['groups_us'][group]:8.1f} | "
              f"{a['groups_us'][group] - b['groups_us'][group]:+7.1f}")
    print(f"{'total':<36} | {sum(b['groups_us'].values()):8.1f} | {sum(a['groups_us'].values()):8.1f} |")
    names = set(b["functions"]) | set(a["functions"])
    delta = lambda k: a["functions"].get(k, (0, 0.0))[1] - b["functions"].get(k, (0, 0.0))[1]  # noqa: E731
    print(f"\n{'us/req delta':>12} | {'calls/req base -> addon':>23} | function")
    for key in sorted(names, key=lambda k: -abs(delta(k)))[:args.top]:
        calls_b, calls_a = b["functions"].get(key, (0, 0))[0], a["functions"].get(key, (0, 0))[0]
        print(f"{delta(key):+12.1f} | {calls_b:9.2f} -> {calls_a:9.2f} | {key}")
    if args.out:
        Path(args.out).write_text(json.dumps({"mode": args.mode, "requests": args.requests, **{
            name: {"calls_per_request": r["calls_per_request"], "groups_us": r["groups_us"]}
            for name, r in result.items()}}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
