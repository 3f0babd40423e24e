#!/usr/bin/env python3
"""The embedded broker alone (sqlite-queue://): publish rate, and receive + ack rate by consumer processes.

    flock /tmp/strangler-bench.lock .venv/bin/python bench/sqlite_queue_bench.py [--messages 30000]

Publishes N messages of ~250 bytes one at a time (each committed before publish returns), then two
consumer processes (prefetch 100, ack each) drain the queue, once per ``claim_max`` value: messages leased
per write transaction (1: one transaction per receive; 100: the default, up to the free prefetch slots).
The receive rate runs from the first message any consumer got to the last one acked. Writes
bench/results/sqlite-queue.json. No Django, no database server.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kombu import Connection, Exchange, Producer, Queue, binding  # noqa: E402

from strangler_sync import sqlite_transport  # noqa: E402, F401 - registers sqlite-queue://

CONSUMER = """
import json, sys, time
sys.path.insert(0, {repo!r})
from kombu import Connection, Exchange, Queue, binding
import strangler_sync.sqlite_transport
exchange = Exchange("bench", type="topic", durable=True)
queue = Queue("bench.q", exchange=exchange, bindings=[binding(exchange, routing_key="product.*")], durable=True)
seen = [0, None, None]
def on_message(body, message):
    seen[1] = seen[1] or time.perf_counter()
    message.ack()
    seen[0] += 1
    seen[2] = time.perf_counter()
options = {{"database": {database!r}, "polling_interval": 0.01, "claim_max": {claim_max}}}
with Connection("sqlite-queue://", transport_options=options) as connection:
    with connection.Consumer(queue, callbacks=[on_message], prefetch_count=100):
        while True:
            try:
                connection.drain_events(timeout=1)
            except TimeoutError:
                break
print(json.dumps(seen))
"""


def run(*, messages: int, claim_max: int, consumers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="sqlite-queue-bench-") as tmp:
        database = f"{tmp}/broker.sqlite3"
        exchange = Exchange("bench", type="topic", durable=True)
        queue = Queue("bench.q", exchange=exchange, bindings=[binding(exchange, routing_key="product.*")],
                      durable=True)
        with Connection("sqlite-queue://", transport_options={"database": database}) as connection:
            channel = connection.channel()
            queue(channel).declare()
            producer = Producer(channel, exchange=exchange, serializer="json", auto_declare=False)
            started = time.perf_counter()
            for n in range(messages):
                producer.publish({"n": n, "payload": "x" * 200}, routing_key="product.updated")
            publish_seconds = time.perf_counter() - started
        script = CONSUMER.format(repo=str(REPO), database=database, claim_max=claim_max)
        procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
                 for _ in range(consumers)]
        seen = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    received = sum(s[0] for s in seen)
    assert received == messages, f"received {received} of {messages}"
    seconds = max(s[2] for s in seen if s[2]) - min(s[1] for s in seen if s[1])
    return {"claim_max": claim_max, "messages": messages, "publish_per_s": messages / publish_seconds,
            "receive_ack_per_s": received / seconds, "consumers": consumers}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--consumers", type=int, default=2)
    args = parser.parse_args()
    results = {"load_average_before": os.getloadavg()[0], "runs": []}
    for claim_max in (1, 100):
        result = run(messages=args.messages, claim_max=claim_max, consumers=args.consumers)
        results["runs"].append(result)
        print(f"claim_max {claim_max:>3}: publish {result['publish_per_s']:,.0f} msg/s, receive + ack "
              f"{result['receive_ack_per_s']:,.0f} msg/s ({args.consumers} consumers)", flush=True)
    results["load_average_after"] = os.getloadavg()[0]
    written = REPO / "bench" / "results" / "sqlite-queue.json"
    written.parent.mkdir(parents=True, exist_ok=True)
    written.write_text(json.dumps(results, indent=2) + "\n")
    print(f"load average {results['load_average_before']:.1f} before, {results['load_average_after']:.1f} after; "
          f"written to {written.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
