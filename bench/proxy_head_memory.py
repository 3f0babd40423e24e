#!/usr/bin/env python3
"""Memory the mitmproxy plane takes for one huge request head (issue 11: mitmproxy has no header-size bound).

    .venv/bin/python bench/proxy_head_memory.py [--mib 32]

Starts `strangler-proxy run` with the default limits in front of a recording upstream, sends one header line of
``--mib`` MiB on one connection, and prints the mitmdump process's RSS and peak RSS (VmRSS/VmHWM) idle, while the
head is still arriving, and after the 431; checks nothing was forwarded. Writes bench/results/proxy-head-memory.json.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.strangler_proxy.planes import start_mitmdump, stop_process  # noqa: E402
from tests.strangler_proxy.raw_http import RecordingUpstream  # noqa: E402
from tests.strangler_proxy.upstreams import free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "proxy-head-memory.json"


def memory_mib(pid: int) -> tuple[float, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=32)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        monolith = RecordingUpstream("monolith")
        routes = workdir / "routes.yaml"
        routes.write_text(f"upstreams:\n  monolith: {monolith.url}\nmonolith: monolith\nroutes: []\n")
        port = free_port()
        runner = start_mitmdump(routes, workdir, port, override_secret=None)
        try:
            children = subprocess.run(["pgrep", "-P", str(runner.pid)], capture_output=True, text=True).stdout.split()
            pid = int(children[0]) if children else runner.pid  # the mitmdump process under strangler-proxy run
            time.sleep(1)
            monolith.reset()
            rows.append(("idle", *memory_mib(pid)))
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ")
                chunk = b"a" * (1 << 20)
                for _ in range(args.mib):
                    sock.sendall(chunk)
                time.sleep(2)
                rows.append((f"{args.mib} MiB header line received, head not finished", *memory_mib(pid)))
                sock.sendall(b"\r\n\r\n")
                sock.settimeout(60)
                status_line = sock.recv(200).split(b"\r\n")[0].decode()
            time.sleep(1)
            rows.append((f"after the answer ({status_line})", *memory_mib(pid)))
            forwarded = len(monolith.requests)
        finally:
            stop_process(runner)
            monolith.close()
    print(f"{'moment':<60} {'RSS MiB':>8} {'peak MiB':>9}")
    for moment, rss, peak in rows:
        print(f"{moment:<60} {rss:>8.0f} {peak:>9.0f}")
    print(f"requests forwarded: {forwarded}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"mib": args.mib, "forwarded": forwarded,
                                   "rows": [{"moment": m, "rss_mib": r, "peak_mib": p} for m, r, p in rows]},
                                  indent=2) + "\n")


if __name__ == "__main__":
    main()
