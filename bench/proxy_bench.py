#!/usr/bin/env python3
"""Traffic-plane overhead, side by side in one run: the same fast upstream reached directly and through each proxy.

    .venv/bin/python bench/proxy_bench.py [--rounds 4] [--duration 2] [--paced-rounds 5] [--only direct,mitm-addon]

Rows: direct; a bare hand-written nginx proxy_pass; hand-written nginx doing the route table's job (canary,
request ids, forwarded headers, fallback, access log); the nginx config rendered from that route table; mitmdump
with a no-op addon; mitmdump with the strangler addon (monolith route: forwarded by mitmproxy itself); the addon on a
service route (sent by the addon's own client, which is what enforces timeouts and fallback); the addon with
shadowing (every request also replayed to the shadow and, for noise learning, to the monolith again). With
`--base-addon DIR/strangler_proxy/addon.py` (another checkout, e.g. `git archive main | tar -x -C DIR`), that addon
runs as rows mitm-base and mitm-base-service too, and the CPU per request of this checkout's addon is compared
with it in the same rounds (target: at most 3 % more).

The machine is shared and noisy, so every setup is started once and measured in interleaved rounds
(A B C D, A B C D, ...); the table shows medians over the rounds, and each ratio is computed within a round
(rows measured seconds apart) and then its median taken. Two kinds of load:
  - saturating: wrk with `--connections` keep-alive connections as fast as they go (throughput; p50/p99 then
    mostly measure queueing), plus the proxy process's own CPU time per request (far less noisy than req/s);
  - paced: a fixed request rate well below every row's capacity (wrk with a Lua `delay()`), which is what
    latency overhead means: the p50 overhead over direct and what shadowing adds to the primary's p99.
The upstream is a private nginx answering a fixed JSON body (the fastest tiny server at hand, so the proxy is what
is measured); without nginx a small asyncio server stands in. Load comes from wrk when installed, else from a
bundled Python keep-alive load generator (slower: compare rows of one run, not runs with different tools).
Prints the tables and the targets, and writes bench/results/proxy.json.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "proxy.json"
BODY = b'{"id": 1, "name": "Espresso cup", "price": "9.50", "tags": ["kitchen", "coffee"]}'
PATH = "/api/products/1/"
# Every row's load comes through one "load balancer": the *-sticky rows trust it (settings.trusted_proxies) and read
# the client from this header; every other row ignores it.
FORWARDED_FOR = "198.18.0.1"
# Every row's client is one returning browser: it sends the sticky cookie it was given on its first visit, which is
# what nearly every request in production looks like (one Set-Cookie per visitor). Sent by every row, not only the
# *-sticky ones, so that a sticky row differs from its reference row in the config only, not in the bytes the
# client sends (before issue 13 a client's cookie was the canary key too). The id's canary bucket is outside the
# 10 %: the monolith side, like the key of every row before (checked by sticky_uid()).
STICKY_UID = "bench-client-0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, timeout: float = 90.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def nginx_binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- upstream -----------------------------------------------------------------------------------------------

def start_nginx(conf_body: str, workdir: Path, access_log: str = "access_log off;") -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(f"""\
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
{conf_body}
    {access_log}
}}
""")
    return subprocess.Popen([nginx_binary(), "-p", f"{workdir}/", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def start_upstream(workdir: Path) -> tuple[int, Callable[[], None], str]:
    port = free_port()
    if nginx_binary():
        body = BODY.decode().replace("'", "\\'")
        process = start_nginx(f"""\
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 100000;
        location / {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}""", workdir / "upstream")
        wait_for(port, process=process)
        return port, lambda: stop(process), "nginx return 200"
    loop = asyncio.new_event_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                match = re.search(rb"(?i)content-length:\s*(\d+)", request)
                if match:
                    await reader.readexactly(int(match.group(1)))
                writer.write(head)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            writer.close()

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", port, backlog=1024))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def shutdown() -> None:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)

    return port, shutdown, "python asyncio"


# -- load ---------------------------------------------------------------------------------------------------

@dataclass
class Measurement:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us_per_request: float | None = None  # CPU time of the proxy process(es) per request served


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value.strip()).groups()
    return float(number) * _UNITS[unit]


def load_wrk(url: str, duration: int, connections: int, threads: int, delay_ms: float = 0.0,
             workdir: Path | None = None, headers: dict[str, str] | None = None) -> Measurement:
    """wrk as fast as it goes, or paced: each connection waits `delay_ms` before each request (Lua `delay()`).
    `headers` go on every request (Setup.headers)."""
    args = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    if delay_ms:
        script = (workdir or Path(tempfile.gettempdir())) / f"paced-{delay_ms:g}.lua"
        script.write_text(f"function delay()\n  return {delay_ms:g}\nend\n")
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in match.groups())
    return Measurement(rps, p50, p99, total, errors)


def load_python(url: str, duration: int, connections: int, threads: int, delay_ms: float = 0.0,
                workdir: Path | None = None, headers: dict[str, str] | None = None) -> Measurement:
    """Keep-alive GETs from `connections` threads; good enough to rank rows when wrk is missing."""
    port = int(url.split(":")[2].split("/")[0])
    path = "/" + url.split("/", 3)[3]
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    deadline = time.monotonic() + duration

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < deadline:
            if delay_ms:
                time.sleep(delay_ms / 1000)
            started = time.perf_counter()
            try:
                connection.request("GET", path, headers={"Host": "localhost", **(headers or {})})
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    errors[index] += 1
            except (OSError, http.client.HTTPException):
                errors[index] += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            latencies[index].append((time.perf_counter() - started) * 1000)
        connection.close()

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    merged = sorted(x for per in latencies for x in per)
    if not merged:
        return Measurement(0.0, 0.0, 0.0, 0, sum(errors))
    return Measurement(len(merged) / elapsed, merged[len(merged) // 2], merged[min(len(merged) - 1,
                       int(len(merged) * 0.99))], len(merged), sum(errors))


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(stat[11]) + int(stat[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """Worker processes of an nginx master."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in children]


# -- proxies ------------------------------------------------------------------------------------------------

NOOP_ADDON = '''\
class NoOp:
    """Hooks that do nothing: the cost of running a Python addon at all."""

    def request(self, flow):
        pass

    def response(self, flow):
        pass


addons = [NoOp()]
'''


# The nginx rows' route table, mid-migration: product reads on a sticky 10 % canary with fallback. The bench's
# client's key is its sticky cookie (STICKY_UID), which lands outside the 10 % (the monolith side): the hot path
# is a canary decision, never the fallback.
NGINX_CANARY_WEIGHT = 10


def route_file(workdir: Path, upstream_port: int, mode: str, name: str, *, sticky: bool = False,
               ryw: bool = False, base: bool = False) -> Path:
    """sticky: the sticky cookie set for clients without it (every row's client has one: STICKY_UID) and the
    load's one peer trusted for X-Forwarded-For; otherwise neither (the planes before issue 13). ryw: the route
    reads your writes (issue 14; no client here wrote, which is the cost every reader pays). base: for an addon
    from before issue 13 (--base-addon), whose loader refuses the `sticky:` block's `set_cookie` key: no block,
    which there means the same (no cookie set, key on cookie, header, address)."""
    shadow = "    diff:\n      learn_noise: true\n" if mode == "shadow" else ""
    weight = f"    weight: {NGINX_CANARY_WEIGHT}\n" if mode == "canary" else ""
    edge = ("settings:\n  trusted_proxies: [127.0.0.1/32]\n" if sticky else
            "" if base else "sticky:\n  set_cookie: false\n")
    text = f"""\
upstreams:
  monolith: http://127.0.0.1:{upstream_port}
  catalog: http://127.0.0.1:{upstream_port}
monolith: monolith
{edge}routes:
  - prefix: /api/products/
    mode: {mode}
    service: catalog
{weight}    fallback: true
    timeout: 10
{"    read_your_writes: true" + chr(10) if ryw else ""}{shadow}"""
    path = workdir / f"{name}.yaml"
    path.write_text(text)
    return path


LUA_MODULE = Path("/usr/lib/nginx/modules/ngx_http_lua_module.so")  # Debian's libnginx-mod-http-lua
LUA_BUCKETS = "{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0}"


def with_lua_counters(conf: str) -> str:
    """The rendered config counting what the metrics log carries in nginx itself, as nginx-lua-prometheus does:
    per request a counter, the latency bucket and the latency sum in a shared dict (read by a /metrics location)."""
    modules = f"load_module {LUA_MODULE.parent}/ndk_http_module.so;\nload_module {LUA_MODULE};\n"
    counting = f"""http {{
    lua_shared_dict strangler_metrics 16m;
    log_by_lua_block {{
        local d = ngx.shared.strangler_metrics
        local key = (ngx.var.strangler_route or "") .. "|" .. (ngx.var.strangler_upstream or "")
        local t = tonumber(ngx.var.request_time) or 0
        d:incr(key .. "|" .. ngx.var.status, 1, 0)
        d:incr(key .. "|sum", t, 0)
        local le = "+Inf"
        for _, bound in ipairs({LUA_BUCKETS}) do
            if t <= bound then le = bound break end
        end
        d:incr(key .. "|le" .. le, 1, 0)
    }}
"""
    return modules + conf.replace("http {\n", counting, 1)


def hand_written_equivalent(upstream_port: int, port: int) -> str:
    """What a platform engineer would write by hand for the nginx rows' route table (see route_file(), canary
    mode): a location per route prefix, the sticky split_clients canary, X-Request-ID passed on when sane or
    generated and returned, the same forwarded headers, the route's timeouts, the safe-method fallback to the
    monolith, upstream keepalive. Its access log is set by start_nginx(): the rendered default (buffered), same
    fields but the route. Written out literally, not rendered, so it shows what the renderer adds.

    Not in here, because only the rendered plane does them: the path guards (absolute-form targets, %2F, %5C,
    backslash), the Host allowlist, the signed override header (map, dispatch, stripping), the hop-by-hop
    request headers nginx does not clear itself, and the route/upstream response headers."""
    weight = NGINX_CANARY_WEIGHT
    return f"""\
    log_format main '$remote_addr "$request" $status $body_bytes_sent $request_time '
                    'upstream=$upstream_addr id=$req_id';
    proxy_http_version 1.1;
    upstream monolith {{ server 127.0.0.1:{upstream_port}; keepalive 32; }}
    upstream catalog {{ server 127.0.0.1:{upstream_port}; keepalive 32; }}

    map $http_x_request_id $req_id {{
        "~^[A-Za-z0-9._:+/=-]{{1,128}}$" $http_x_request_id;
        default $request_id;
    }}
    # canary key: the strangler_uid cookie, else X-User-Id, else the client address
    map $http_x_user_id $user_key {{ "" $remote_addr; default $http_x_user_id; }}
    map $cookie_strangler_uid $canary_key {{ "" $user_key; default $cookie_strangler_uid; }}
    split_clients "$canary_key" $products_upstream {{ {weight}% catalog; * monolith; }}
    # fall back to the monolith for safe methods only, and only when the canary picked the service
    map "$request_method $products_upstream" $products_fallback {{
        "~^(GET|HEAD|OPTIONS) catalog$" 1;
        default 0;
    }}

    server {{
        listen 127.0.0.1:{port};
        proxy_set_header Host $http_host;
        proxy_set_header Connection "";
        proxy_set_header X-Request-ID $req_id;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_hide_header X-Request-ID;
        add_header X-Request-ID $req_id always;

        location / {{
            proxy_pass http://monolith;
        }}
        location /api/products/ {{
            proxy_pass http://$products_upstream;
            proxy_connect_timeout 10s;
            proxy_send_timeout 10s;
            proxy_read_timeout 10s;
            proxy_intercept_errors on;
            error_page 500 502 503 504 = @products_fallback;
        }}
        # (simpler than the rendered config: a failing monolith answers 502 here, not its own 5xx)
        location @products_fallback {{
            if ($products_fallback = 0) {{ return 502; }}
            proxy_pass http://monolith;
            proxy_connect_timeout 10s;
            proxy_send_timeout 10s;
            proxy_read_timeout 10s;
        }}
    }}"""


def start_mitmdump(workdir: Path, upstream_port: int, script: Path, options: dict[str, str],
                   headers: dict[str, str]) -> tuple[int, Callable, int]:
    """`script` runs with its own checkout's packages (an addon from another checkout imports that checkout's
    strangler_proxy, not this one's)."""
    port = free_port()
    project = script.resolve().parent.parent if script.parent.name == "strangler_proxy" else ROOT
    mitmdump = shutil.which("mitmdump", path=str(Path(sys.executable).parent)) or "mitmdump"
    args = [mitmdump, "--mode", f"reverse:http://127.0.0.1:{upstream_port}", "--listen-host", "127.0.0.1",
            "--listen-port", str(port), "-q", "--set", "connection_strategy=lazy", "--set", "keep_host_header=true",
            "--set", f"confdir={workdir / 'mitmproxy'}", "-s", str(script)]
    for key, value in options.items():
        args += ["--set", f"{key}={value}"]
    log = (workdir / f"mitmdump-{port}.log").open("wb")
    process = subprocess.Popen(args, cwd=project, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONPATH": str(project)})
    wait_for(port, process=process)
    # The port opens before the script is loaded: wait until a request goes through.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if probe(port, headers)[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.1)
    return port, lambda: (stop(process), log.close()), process.pid


def probe(port: int, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", PATH, headers={"Host": "localhost", **headers})
        response = connection.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def admin_summary(port: int) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/diffs", timeout=5) as response:
        return json.loads(response.read())


@dataclass
class Setup:
    """One way of reaching the upstream, started once and measured in every round."""

    name: str
    what: str
    port: int
    plane: str  # "direct", "nginx" or "mitm": paced rows of a plane share a rate
    cpu_pids: Callable[[], list[int]]  # processes whose CPU time is the cost of this row
    expect_upstream: str | None = None
    admin_port: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # sent on every request of the row (load and probe)
    saturated: list[Measurement] = field(default_factory=list)
    paced: list[Measurement] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def sticky_uid() -> str:
    """STICKY_UID, checked to be outside the nginx rows' canary (the monolith side, like every other row's key)."""
    from strangler_proxy.murmur import in_canary

    if in_canary(STICKY_UID, NGINX_CANARY_WEIGHT):
        raise RuntimeError(f"{STICKY_UID!r} lands in the {NGINX_CANARY_WEIGHT} % canary: pick another")
    return STICKY_UID


def row_headers(name: str) -> dict[str, str]:
    """What the row's client sends (the same for every row, `name` is for a row that would differ): it comes
    through the load balancer and returns the sticky cookie it was given (the default cookie name, as route_file()
    leaves it)."""
    from strangler_proxy.spec import StickySpec

    return {"X-Forwarded-For": FORWARDED_FOR, "Cookie": f"{StickySpec().cookie}={sticky_uid()}"}


def start_setups(args: argparse.Namespace, workdir: Path, upstream_port: int, upstream_kind: str,
                 upstream_pid: int | None, stoppers: list[Callable]) -> list[Setup]:
    only = set(args.only.split(",")) if args.only else None
    wanted = lambda name: only is None or name in only  # noqa: E731
    setups: list[Setup] = []
    if wanted("direct"):
        pids = (lambda: child_pids(upstream_pid)) if upstream_pid else (lambda: [])
        setups.append(Setup("direct", f"the upstream itself ({upstream_kind})", upstream_port, "direct", pids))
    if wanted("nginx-hand") and nginx_binary():
        port = free_port()
        process = start_nginx(f"""\
    upstream app {{ server 127.0.0.1:{upstream_port}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 100000;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}""", workdir / "nginx-hand")
        stoppers.append(lambda process=process: stop(process))
        wait_for(port, process=process)
        setups.append(Setup("nginx-hand", "bare hand-written nginx proxy_pass, upstream keepalive, no access log", port,
                            "nginx", lambda process=process: child_pids(process.pid)))
    if wanted("nginx-equiv") and nginx_binary():
        port = free_port()
        run = workdir / "nginx-equiv"
        process = start_nginx(hand_written_equivalent(upstream_port, port), run,
                              access_log=f"access_log {run}/access.log main buffer=64k flush=1s;")
        stoppers.append(lambda process=process: stop(process))
        wait_for(port, process=process)
        setups.append(Setup("nginx-equiv", "hand-written nginx for the same route table (canary, request id, "
                            "forwarded headers, timeouts, fallback, buffered access log)", port, "nginx",
                            lambda process=process: child_pids(process.pid)))
    for name, metrics_log, sticky in (("nginx-rendered", True, False), ("nginx-rendered-nometrics", False, False),
                                      ("nginx-rendered-lua", False, False), ("nginx-rendered-sticky", True, True),
                                      ("nginx-rendered-ryw", True, False)):
        if not (wanted(name) and nginx_binary()) or (name.endswith("-lua") and not LUA_MODULE.exists()):
            continue
        from strangler_proxy.loader import load_route_file
        from strangler_proxy.nginx.control import NginxInstance
        from strangler_proxy.nginx.render import NginxOptions

        port = free_port()
        table = load_route_file(route_file(workdir, upstream_port, "canary", name, sticky=sticky,
                                           ryw=name.endswith("-ryw")))
        instance = NginxInstance(NginxOptions(runtime_dir=workdir / name, listen=f"127.0.0.1:{port}",
                                              metrics_log=metrics_log))
        conf = instance.install(table)  # rendered and `nginx -t`-ed exactly as `strangler-proxy nginx-reload` does
        if name.endswith("-lua"):  # the alternative to the metrics log, measured for exporter.py's choice
            conf.write_text(with_lua_counters(conf.read_text()))
        # Run in the foreground like every other server here: a daemonised nginx calls setsid(), and Linux's
        # scheduler autogroups then give it a CPU share of its own (measured: half the throughput of the same
        # config in the foreground on a busy machine), which would compare schedulers, not configs.
        process = subprocess.Popen([nginx_binary(), "-p", f"{instance.prefix}/", "-c", str(conf), "-g", "daemon off;"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stoppers.append(lambda process=process: stop(process))
        wait_for(port, process=process)
        exporter = []
        if metrics_log:  # the exporter tailing the metrics log runs beside it: its CPU counts as the row's
            exporter_port = free_port()
            exporter = [subprocess.Popen([sys.executable, "-m", "strangler_proxy", "nginx-metrics", "--runtime-dir",
                                          str(instance.prefix), "--listen", f"127.0.0.1:{exporter_port}"],
                                         cwd=ROOT, stdout=subprocess.DEVNULL)]
            stoppers.append(lambda process=exporter[0]: stop(process))
            wait_for(exporter_port, process=exporter[0])
        what = ("config rendered from the route file (as strangler-proxy nginx-reload), metrics log + exporter"
                if metrics_log else "the same rendered config without the metrics log")
        if name.endswith("-lua"):
            what = "the same, counting in a Lua shared dict (log_by_lua: count, histogram bucket, sum) instead"
        if sticky:
            what += ", + sticky cookie and trusted proxies"
        if name.endswith("-ryw"):
            what += ", + read-your-writes on the route (clients without the cookie)"
        pids = lambda process=process, exporter=exporter: child_pids(process.pid) + [p.pid for p in exporter]  # noqa: E731
        setups.append(Setup(name, what, port, "nginx", pids, expect_upstream="monolith"))
    if wanted("mitm-noop"):
        script = workdir / "noop_addon.py"
        script.write_text(NOOP_ADDON)
        port, stopper, pid = start_mitmdump(workdir, upstream_port, script, {}, row_headers("mitm-noop"))
        stoppers.append(stopper)
        setups.append(Setup("mitm-noop", "mitmdump reverse mode with a no-op addon", port, "mitm",
                            lambda pid=pid: [pid]))
    addon = ROOT / "strangler_proxy" / "addon.py"
    base = Path(args.base_addon).resolve() if args.base_addon else None
    for name, mode, what, expect, script in (
        ("mitm-addon", "monolith", "strangler addon, monolith route (forwarded by mitmproxy)", "monolith", addon),
        ("mitm-addon-sticky", "monolith", "strangler addon, monolith route, + sticky cookie and trusted proxies",
         "monolith", addon),
        ("mitm-addon-service", "service", "strangler addon, service route (the addon's own client)", "catalog", addon),
        ("mitm-addon-service-ryw", "service", "strangler addon, service route + read-your-writes (no client wrote)",
         "catalog", addon),
        ("mitm-addon-shadow", "shadow", "strangler addon, shadow route: + shadow and noise calls", "monolith", addon),
        ("mitm-base", "monolith", f"--base-addon {base}, monolith route", "monolith", base),
        ("mitm-base-service", "service", f"--base-addon {base}, service route", "catalog", base),
    ):
        if not wanted(name) or script is None:
            continue
        admin_port = free_port()
        options = {"strangler_routes": str(route_file(workdir, upstream_port, mode, name,
                                                      sticky=name.endswith("-sticky"), ryw=name.endswith("-ryw"),
                                                      base=script is base)),
                   "strangler_admin_port": str(admin_port), "strangler_diffs": str(workdir / f"{name}.jsonl"),
                   "strangler_reload_interval": "0.25"}
        port, stopper, pid = start_mitmdump(workdir, upstream_port, script, options, row_headers(name))
        stoppers.append(stopper)
        setups.append(Setup(name, what, port, "mitm", lambda pid=pid: [pid], expect_upstream=expect,
                            admin_port=admin_port if mode == "shadow" else None))
    for setup in setups:
        setup.headers = row_headers(setup.name)
    return setups


def measure(args: argparse.Namespace, setup: Setup, loader, workdir: Path, *, duration: int, connections: int,
            delay_ms: float = 0.0) -> Measurement:
    status, headers = probe(setup.port, setup.headers)
    if status != 200 or (setup.expect_upstream and headers.get("x-strangler-upstream") != setup.expect_upstream):
        raise RuntimeError(f"{setup.name}: probe answered {status} {headers}")
    if "Cookie" in setup.headers and "set-cookie" in headers:  # a client keeping the cookie is not given it again
        raise RuntimeError(f"{setup.name}: the sticky cookie was set again: {headers['set-cookie']}")
    pids = setup.cpu_pids()
    cpu_before = cpu_seconds(pids)
    m = loader(f"http://127.0.0.1:{setup.port}{PATH}", duration, connections, args.threads, delay_ms, workdir,
               setup.headers)
    if pids and m.requests:
        m.cpu_us_per_request = (cpu_seconds(pids) - cpu_before) * 1e6 / m.requests
    cpu = f"  cpu {m.cpu_us_per_request:6.1f} us/req" if m.cpu_us_per_request is not None else ""
    print(f"  {setup.name:<18} {m.requests_per_second:>9.0f} req/s  p50 {m.p50_ms:7.2f} ms  p99 {m.p99_ms:7.2f} ms"
          + cpu + (f"  errors {m.errors}" if m.errors else ""), flush=True)
    return m


def paced_delay_ms(args: argparse.Namespace, plane: str) -> float:
    """Per-connection pause that makes `paced_connections` connections offer the plane's rate."""
    rate = args.mitm_rate if plane == "mitm" else args.nginx_rate
    return args.paced_connections * 1000.0 / rate


def run(args: argparse.Namespace) -> list[Setup]:
    workdir = Path(tempfile.mkdtemp(prefix="proxy-bench-"))
    stoppers: list[Callable] = []
    upstream_port, stop_upstream, upstream_kind = start_upstream(workdir)
    upstream_pid_file = workdir / "upstream" / "nginx.pid"
    loader = load_wrk if shutil.which("wrk") and not args.python_load else load_python
    try:
        upstream_pid = int(upstream_pid_file.read_text()) if upstream_pid_file.exists() else None
        setups = start_setups(args, workdir, upstream_port, upstream_kind, upstream_pid, stoppers)
        for round_no in range(args.rounds):
            print(f"saturating, round {round_no + 1}/{args.rounds} ({args.connections} connections)", flush=True)
            for setup in setups:
                setup.saturated.append(measure(args, setup, loader, workdir, duration=args.duration,
                                               connections=args.connections))
        paced = [s for s in setups if s.name in PACED_ROWS]
        for round_no in range(args.paced_rounds if paced else 0):
            print(f"paced, round {round_no + 1}/{args.paced_rounds} (nginx rows {args.nginx_rate:g} req/s, "
                  f"mitmproxy rows {args.mitm_rate:g} req/s)", flush=True)
            for setup in paced:
                setup.paced.append(measure(args, setup, loader, workdir, duration=args.paced_duration,
                                           connections=args.paced_connections,
                                           delay_ms=paced_delay_ms(args, setup.plane)))
        for setup in setups:
            if setup.admin_port:
                time.sleep(0.5)  # the last shadows finish
                route = admin_summary(setup.admin_port)["routes"].get("/api/products/", {})
                setup.extra = {key: route.get(key, 0) for key in ("comparisons", "diffs", "errors", "dropped")}
        return setups
    finally:
        for stopper in reversed(stoppers):
            stopper()
        stop_upstream()
        shutil.rmtree(workdir, ignore_errors=True)


# -- report -------------------------------------------------------------------------------------------------

PACED_ROWS = ("direct", "nginx-hand", "nginx-equiv", "nginx-rendered", "mitm-noop", "mitm-addon", "mitm-addon-shadow")


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _paired(a: Setup | None, b: Setup | None, paced: bool, value: Callable[[Measurement, Measurement], float]):
    """Median over rounds of value(a's measurement, b's measurement) taken in the same round."""
    if a is None or b is None:
        return None
    pairs = zip(a.paced, b.paced, strict=False) if paced else zip(a.saturated, b.saturated, strict=False)
    return _median([value(x, y) for x, y in pairs])


def ratios(setups: list[Setup]) -> list[dict]:
    by = {s.name: s for s in setups}
    g = by.get
    rps = lambda x, y: x.requests_per_second / y.requests_per_second  # noqa: E731
    cpu = lambda x, y: (x.cpu_us_per_request / y.cpu_us_per_request  # noqa: E731
                        if x.cpu_us_per_request and y.cpu_us_per_request else None)
    rows = [
        # The target's hand-written nginx is the one doing the same job (see docs/topics/performance.md, Traffic plane).
        ("rendered / hand-written equivalent nginx throughput",
         _paired(g("nginx-rendered"), g("nginx-equiv"), False, rps), ">=", 0.95, "x"),
        ("rendered nginx p50 overhead over direct, paced (ms)",
         _paired(g("nginx-rendered"), g("direct"), True, lambda x, y: x.p50_ms - y.p50_ms), "<=", 0.5, "ms"),
        ("rendered nginx p50 overhead over direct, saturating (ms)",
         _paired(g("nginx-rendered"), g("direct"), False, lambda x, y: x.p50_ms - y.p50_ms), "<=", 0.5, "ms"),
        ("addon / no-op addon throughput (monolith route)", _paired(g("mitm-addon"), g("mitm-noop"), False, rps),
         ">=", 0.90, "x"),
        ("addon / no-op addon throughput (service route)",
         _paired(g("mitm-addon-service"), g("mitm-noop"), False, rps), ">=", 0.90, "x"),
        ("shadowing: primary p99 delta, paced (ms)",
         _paired(g("mitm-addon-shadow"), g("mitm-addon"), True, lambda x, y: x.p99_ms - y.p99_ms), "<=", 1.0, "ms"),
        # Issue 13: setting the sticky cookie and reading the client from a trusted proxy's X-Forwarded-For.
        ("sticky cookie + trusted proxies: rendered nginx CPU per request",
         _paired(g("nginx-rendered-sticky"), g("nginx-rendered"), False, cpu), "<=", 1.02, "x"),
        ("sticky cookie + trusted proxies: addon CPU per request",
         _paired(g("mitm-addon-sticky"), g("mitm-addon"), False, cpu), "<=", 1.02, "x"),
        ("sticky cookie + trusted proxies: rendered nginx throughput",
         _paired(g("nginx-rendered-sticky"), g("nginx-rendered"), False, rps), None, None, "x"),
        ("sticky cookie + trusted proxies: addon throughput",
         _paired(g("mitm-addon-sticky"), g("mitm-addon"), False, rps), None, None, "x"),
        # Issue 14: read-your-writes on the route, for clients that did not write (no cookie): <= 2 % throughput.
        ("read-your-writes: rendered nginx throughput",
         _paired(g("nginx-rendered-ryw"), g("nginx-rendered"), False, rps), ">=", 0.98, "x"),
        ("read-your-writes: addon throughput (service route)",
         _paired(g("mitm-addon-service-ryw"), g("mitm-addon-service"), False, rps), ">=", 0.98, "x"),
        ("read-your-writes: rendered nginx CPU per request",
         _paired(g("nginx-rendered-ryw"), g("nginx-rendered"), False, cpu), None, None, "x"),
        ("read-your-writes: addon CPU per request (service route)",
         _paired(g("mitm-addon-service-ryw"), g("mitm-addon-service"), False, cpu), None, None, "x"),
        ("read-your-writes addon / base addon CPU per request (service route)",
         _paired(g("mitm-addon-service-ryw"), g("mitm-base-service"), False, cpu), None, None, "x"),
        # Not targets, for reading the rows: CPU time per request is far steadier than req/s on a shared machine.
        ("rendered with Lua counters / without: throughput",
         _paired(g("nginx-rendered-lua"), g("nginx-rendered-nometrics"), False, rps), None, None, "x"),
        ("rendered with Lua counters / without: CPU per request",
         _paired(g("nginx-rendered-lua"), g("nginx-rendered-nometrics"), False, cpu), None, None, "x"),
        ("rendered with metrics export / without: throughput",
         _paired(g("nginx-rendered"), g("nginx-rendered-nometrics"), False, rps), None, None, "x"),
        ("rendered with metrics export / without: CPU per request (nginx + exporter)",
         _paired(g("nginx-rendered"), g("nginx-rendered-nometrics"), False, cpu), None, None, "x"),
        ("rendered / bare proxy_pass nginx throughput", _paired(g("nginx-rendered"), g("nginx-hand"), False, rps),
         None, None, "x"),
        ("rendered / hand-written equivalent nginx CPU per request",
         _paired(g("nginx-rendered"), g("nginx-equiv"), False, cpu), None, None, "x"),
        ("rendered / bare proxy_pass nginx CPU per request",
         _paired(g("nginx-rendered"), g("nginx-hand"), False, cpu), None, None, "x"),
        ("hand-written equivalent / bare proxy_pass nginx throughput",
         _paired(g("nginx-equiv"), g("nginx-hand"), False, rps), None, None, "x"),
        ("addon / no-op addon CPU per request (monolith route)",
         _paired(g("mitm-addon"), g("mitm-noop"), False, cpu), None, None, "x"),
        ("addon / no-op addon CPU per request (service route)",
         _paired(g("mitm-addon-service"), g("mitm-noop"), False, cpu), None, None, "x"),
        # --base-addon: the same addon from another checkout (a change's CPU cost, measured side by side).
        ("addon / base addon CPU per request (monolith route)",
         _paired(g("mitm-addon"), g("mitm-base"), False, cpu), "<=", 1.03, "x"),
        ("addon / base addon CPU per request (service route)",
         _paired(g("mitm-addon-service"), g("mitm-base-service"), False, cpu), "<=", 1.03, "x"),
        ("shadowing: primary p99 delta, saturating (ms)",
         _paired(g("mitm-addon-shadow"), g("mitm-addon"), False, lambda x, y: x.p99_ms - y.p99_ms), None, None, "ms"),
    ]
    out = []
    for what, value, op, target, unit in rows:
        if value is None:
            continue
        met = None if op is None else (value >= target if op == ">=" else value <= target)
        out.append({"what": what, "value": round(value, 3), "unit": unit, "target": target and f"{op} {target:g}",
                    "met": met})
    return out


def summary_row(setup: Setup, measurements: list[Measurement]) -> dict:
    return {
        "requests_per_second": round(_median([m.requests_per_second for m in measurements]), 1),
        "p50_ms": round(_median([m.p50_ms for m in measurements]), 3),
        "p99_ms": round(_median([m.p99_ms for m in measurements]), 3),
        "cpu_us_per_request": (round(c, 1) if (c := _median([m.cpu_us_per_request for m in measurements]))
                               is not None else None),
        "requests": sum(m.requests for m in measurements),
        "errors": sum(m.errors for m in measurements),
    }


def print_report(setups: list[Setup], found: list[dict], args: argparse.Namespace) -> None:
    print()
    print(f"saturating ({args.connections} connections; medians of {args.rounds} rounds)")
    print(f"| {'setup':<18} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'CPU us/req':>10} | notes")
    print(f"|{'-' * 20}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 12}|------")
    for setup in (s for s in setups if s.saturated):
        row = summary_row(setup, setup.saturated)
        cpu = f"{row['cpu_us_per_request']:.1f}" if row["cpu_us_per_request"] is not None else "-"
        note = setup.what
        if setup.extra:
            note = (f"{setup.extra['comparisons']} comparisons, {setup.extra['dropped']} shadows dropped "
                    "(bounded queue)")
        if row["errors"]:
            note += f"; {row['errors']} errors"
        print(f"| {setup.name:<18} | {row['requests_per_second']:>8.0f} | {row['p50_ms']:>7.2f} | "
              f"{row['p99_ms']:>7.2f} | {cpu:>10} | {note}")
    paced = [s for s in setups if s.paced]
    if paced:
        print()
        print(f"paced ({args.paced_connections} connections; nginx rows {args.nginx_rate:g} req/s, mitmproxy rows "
              f"{args.mitm_rate:g} req/s; medians of {args.paced_rounds} rounds)")
        print(f"| {'setup':<18} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} |")
        print(f"|{'-' * 20}|{'-' * 10}|{'-' * 9}|{'-' * 9}|")
        for setup in paced:
            row = summary_row(setup, setup.paced)
            print(f"| {setup.name:<18} | {row['requests_per_second']:>8.0f} | {row['p50_ms']:>7.2f} | "
                  f"{row['p99_ms']:>7.2f} |")
    print()
    print("ratios (each taken within a round, then the median over rounds)")
    for item in found:
        verdict = "" if item["met"] is None else ("  target " + item["target"] + (": met" if item["met"]
                                                                                  else ": NOT met"))
        print(f"  {item['what']:<58} {item['value']:>8.3f}{verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=2, help="seconds of load per measurement (default 2)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved saturating rounds (default 4)")
    parser.add_argument("--paced-rounds", type=int, default=5, help="interleaved paced rounds (default 5)")
    parser.add_argument("--paced-duration", type=int, default=2, help="seconds per paced measurement (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="saturating load: connections (default 16)")
    parser.add_argument("--paced-connections", type=int, default=4, help="paced load: connections (default 4)")
    parser.add_argument("--nginx-rate", type=float, default=1000, help="paced req/s for direct and nginx rows")
    parser.add_argument("--mitm-rate", type=float, default=200, help="paced req/s for mitmproxy rows")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--only", default="", help="comma-separated row names")
    parser.add_argument("--base-addon", default="", metavar="ADDON_PY",
                        help="also run this addon.py (e.g. main's, from `git archive main | tar -x -C DIR`) as rows "
                             "mitm-base and mitm-base-service, compared with this checkout's addon")
    parser.add_argument("--python-load", action="store_true", help="use the bundled load generator even with wrk")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    tool = "wrk" if shutil.which("wrk") and not args.python_load else "python"
    load_before = os.getloadavg()[0]  # other work on the machine skews every row; recorded with the results
    started = time.monotonic()
    print(f"proxy_bench: {args.rounds} saturating rounds of {args.duration}s + {args.paced_rounds} paced rounds of "
          f"{args.paced_duration}s per row, "
          f"load from {tool}, {os.cpu_count()} CPUs, load average {load_before:.2f}", flush=True)
    setups = run(args)
    found = ratios(setups)
    print_report(setups, found, args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "proxy",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python3 bench/proxy_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seconds": round(time.monotonic() - started, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_1m_before": load_before, "load_average_1m_after": os.getloadavg()[0]},
        "load": {"tool": tool, "duration_s": args.duration, "paced_duration_s": args.paced_duration,
                 "rounds": args.rounds, "paced_rounds": args.paced_rounds,
                 "connections": args.connections, "paced_connections": args.paced_connections,
                 "paced_rate_nginx": args.nginx_rate, "paced_rate_mitm": args.mitm_rate, "path": PATH},
        "rows": [{"name": s.name, "what": s.what, "saturating": summary_row(s, s.saturated) if s.saturated else None,
                  "paced": summary_row(s, s.paced) if s.paced else None, **s.extra,
                  "rounds": {"saturating": [asdict(m) for m in s.saturated], "paced": [asdict(m) for m in s.paced]}}
                 for s in setups],
        "ratios": found,
    }, indent=2) + "\n")
    print(f"\nwrote {out} ({time.monotonic() - started:.0f} s)")
    errors = sum(m.errors for s in setups for m in [*s.saturated, *s.paced])
    return 0 if setups and errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
