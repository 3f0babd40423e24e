"""A fenced ownership flip under load on the running demo: the scenario of test_flip_under_load and bench/flip_bench.

Writer threads keep about ``rate`` writes/s of staff PATCHes on products through the demo's proxy (each thread
owns its products, so the last write a client got a 2xx for is the one each side must hold after). Meanwhile
the flip is done as the catalog plan's flip-ownership step does it: a route edit holds the writes of
/api/products/ and /api/categories/ (``hold: reject``), ``ownership_flip`` fences, drains and flips product and
category, and a second edit sends every method to the new owner's side and lifts the hold; then the same back.
Clients retry a 503 ``write_hold`` after its ``Retry-After`` (the hold's contract) and those are counted; any
409 or other failure is counted too. After the writers stop and the follower's watermarks reach the owner's,
``verify_aggregate`` compares both aggregates, and every product's last acknowledged price is read on both
sides directly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import requests

from migrations_plan.ownership_flip import ownership_flip
from strangler_sync.verify import verify_aggregate
from tests.test_demo import Demo
from tests.waiting import REQUEST_TIMEOUT, WAIT_TIMEOUT, wait_until

ROUTES = ("/api/products/", "/api/categories/")
AGGREGATES = ("category", "product")
READS_ONLY = ["GET", "HEAD", "OPTIONS"]
HOLD_CODE = "write_hold"
RECONCILE_QUIET = 20.0  # seconds after a round of the demo's reconciliation (every 30 s) it surely still waits


def staff_cookies(demo: Demo) -> dict:
    """A session of the demo's superuser, logged in once at the monolith (the proxy resolves it for the catalog)."""
    monolith = demo.state["projects"]["monolith"]
    login = requests.Session()
    login.get(f"{monolith}/admin/login/", timeout=REQUEST_TIMEOUT)
    answer = login.post(f"{monolith}/admin/login/", timeout=REQUEST_TIMEOUT * 2, allow_redirects=False, data={
        "username": "admin", "password": "admin", "csrfmiddlewaretoken": login.cookies["csrftoken"],
        "next": "/admin/"})
    assert answer.status_code == 302 and "sessionid" in login.cookies, answer.text[:500]
    return {"sessionid": login.cookies["sessionid"], "csrftoken": login.cookies["csrftoken"]}


class Writers:
    """`threads` writers sharing `rate` writes/s, each on its own products; a write is retried after a 503
    write_hold's Retry-After until it gets another answer."""

    def __init__(self, demo: Demo, cookies: dict, *, products: list[int], rate: float, threads: int = 32):
        self.demo, self.cookies, self.rate, self.threads = demo, cookies, rate, threads
        self.owned = [products[i::threads] for i in range(threads)]
        self.acked: dict[int, str] = {}  # product -> price of the last write answered 2xx
        self.uncertain: set[int] = set()  # a write without an answer (timeout): its outcome is unknown
        self.counts: Counter = Counter()  # ok, retried (503 write_hold answers), conflict (409), other
        self.others: list[str] = []
        self.latencies: list[float] = []  # seconds of each answered write attempt
        self.upstreams: Counter = Counter()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        for index in range(self.threads):
            worker = threading.Thread(target=self._write, args=(index,), daemon=True, name=f"writer-{index}")
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(REQUEST_TIMEOUT * 4)
            assert not worker.is_alive(), f"{worker.name} did not stop"

    def _write(self, index: int) -> None:
        session = requests.Session()
        session.cookies.update(self.cookies)
        session.headers["X-CSRFToken"] = self.cookies["csrftoken"]
        interval = self.threads / self.rate
        due, n = time.monotonic(), 0
        while not self._stop.is_set():
            product = self.owned[index][n % len(self.owned[index])]
            price = f"{1000 + n}.{index:02d}"  # unique per product: a product belongs to one thread
            self._send(session, product, price)
            n += 1
            due += interval
            self._stop.wait(max(0.0, due - time.monotonic()))
            due = max(due, time.monotonic() - interval)  # behind after a long hold: do not burst to catch up

    def _send(self, session: requests.Session, product: int, price: str) -> None:
        url = f"{self.demo.proxy}/api/products/{product}/"
        while True:
            sent = time.monotonic()
            try:
                answer = session.patch(url, json={"price": price}, timeout=REQUEST_TIMEOUT * 2)
            except requests.RequestException as exc:
                with self._lock:
                    self.counts["no_answer"] += 1
                    self.uncertain.add(product)
                    self.others.append(f"{product}: {type(exc).__name__}")
                return
            code = _error_code(answer)
            with self._lock:
                self.latencies.append(time.monotonic() - sent)
                if answer.status_code == 503 and code == HOLD_CODE:
                    self.counts["retried"] += 1
                elif 200 <= answer.status_code < 300:
                    self.counts["ok"] += 1
                    self.acked[product] = price
                    self.uncertain.discard(product)
                    self.upstreams[answer.headers.get("X-Strangler-Upstream")] += 1
                    return
                else:
                    self.counts["conflict" if answer.status_code == 409 else "other"] += 1
                    self.others.append(f"{product}: {answer.status_code} {answer.text[:200]}")
                    return
            self._stop.wait(float(answer.headers.get("Retry-After") or 1))  # the hold's contract


def _error_code(answer: requests.Response) -> str | None:
    try:
        return answer.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def _edit_routes(demo: Demo, *, hold: str | None, methods: list[str] | None | bool = False) -> None:
    def change(document: dict) -> None:
        for route in document["routes"]:
            if route.get("prefix") in ROUTES:
                route.pop("hold", None)
                if hold is not None:
                    route["hold"] = hold
                if methods is not False:
                    route.pop("methods", None)
                    if methods is not None:
                        route["methods"] = methods
    demo.routes_edit(change)


def flip_once(demo: Demo, *, to: str) -> float:
    """The flip-ownership step's actions, monolith -> catalog or back; the seconds writes were held (from the
    proxy serving the hold to it serving the lift)."""
    _edit_routes(demo, hold="reject")
    held = time.monotonic()
    ownership_flip(projects=("monolith", "catalog"), routes=Path(demo.state["routes_file"]),
                   owners={aggregate: to for aggregate in AGGREGATES})
    _edit_routes(demo, hold=None, methods=None if to == "catalog" else READS_ONLY)
    return time.monotonic() - held


def _watermarks(base: str) -> dict:
    return requests.get(f"{base}/sync/ownership/", params={"watermarks": ",".join(AGGREGATES)},
                        timeout=REQUEST_TIMEOUT).json()["watermarks"]


def _proxy_counter(demo: Demo, name: str) -> float:
    """A counter of the demo's mitmproxy plane, summed over its labels."""
    text = requests.get(f"{demo.state['proxy_admin']}/metrics", timeout=REQUEST_TIMEOUT).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


@contextlib.contextmanager
def reconciliation_paused(demo: Demo):
    """The demo's continuous reconciliation stopped (SIGSTOP, then SIGCONT): it re-emits whatever differs at the
    moment of its pass, the replication lag of a write in flight included, and such a repair could also hide a
    lost write from the checks after the run. Stopped only between two rounds of passes (while it waits its
    30 s), never inside a pass's transaction, which would block the monolith's writes."""
    pid = demo.state["pids"].get("catalog-reconcile")
    if pid is not None:
        wait_until(lambda: _reconcile_waiting(demo), timeout=WAIT_TIMEOUT * 2,
                   what="the demo's reconciliation to finish a round of passes")
        os.killpg(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGCONT)


def _reconcile_waiting(demo: Demo) -> bool:
    """Every aggregate had as many passes and the round ended less than RECONCILE_QUIET seconds ago: the process
    waits (30 s between rounds in the demo) for at least 10 s more."""
    passes = requests.get(f"{demo.state['projects']['monolith']}/sync/reconcile/", timeout=REQUEST_TIMEOUT).json()
    rounds = {p["passes"] for p in passes["passes"]}
    if len(rounds) != 1 or not passes["passes"]:
        return False
    ended = max(datetime.fromisoformat(p["finished_at"]) for p in passes["passes"])
    return (datetime.now(UTC) - ended).total_seconds() < RECONCILE_QUIET


def _reconciled(demo: Demo) -> dict:
    """The demo's continuous reconciliation (monolith -> catalog), summed over its aggregates: what it found and
    repaired so far (paused during the run: both must stay as they were)."""
    passes = requests.get(f"{demo.state['projects']['monolith']}/sync/reconcile/", timeout=REQUEST_TIMEOUT).json()
    return {key: sum(p.get(key) or 0 for p in passes["passes"]) for key in ("differences_found_total",
                                                                          "repaired_total")}


def _product_price(base: str, product: int) -> str | None:
    answer = requests.get(f"{base}/api/products/{product}/", timeout=REQUEST_TIMEOUT)
    return answer.json().get("price") if answer.status_code == 200 else f"status {answer.status_code}"


def flip_run(demo: Demo, *, flips: int, rate: float = 50.0, dwell: float = 3.0, products: int = 64) -> dict:
    """`flips` flips (monolith -> catalog, back, ...) under `rate` writes/s, `dwell` seconds of writes before,
    between and after them; the figures of the run (see the module doc). Ends on the monolith's side when
    `flips` is even. The demo's continuous reconciliation is paused meanwhile (reconciliation_paused)."""
    with reconciliation_paused(demo):
        return _flip_run(demo, flips=flips, rate=rate, dwell=dwell, products=products)


def _flip_run(demo: Demo, *, flips: int, rate: float, dwell: float, products: int) -> dict:
    projects = demo.state["projects"]
    writers = Writers(demo, staff_cookies(demo), products=list(range(1, products + 1)), rate=rate)
    owner = "monolith"
    holds: list[float] = []
    resent_before = _proxy_counter(demo, "strangler_proxy_write_resends_total")
    reconciled_before = _reconciled(demo)
    started = time.monotonic()
    writers.start()
    try:
        time.sleep(dwell)
        for _ in range(flips):
            owner = "catalog" if owner == "monolith" else "monolith"
            holds.append(flip_once(demo, to=owner))
            time.sleep(dwell)
    finally:
        writers.stop()
    writing = time.monotonic() - started
    latencies = sorted(writers.latencies)
    follower = "catalog" if owner == "monolith" else "monolith"
    # every version the owner issued has been applied on the follower (a follower never runs ahead)
    wait_until(lambda: _watermarks(projects[follower]) == _watermarks(projects[owner]),
               timeout=WAIT_TIMEOUT * 2, what="the follower to apply every version the owner issued")
    differences = {a: verify_aggregate(source=projects[owner], follower=projects[follower], aggregate=a).as_dict()
                   for a in AGGREGATES}
    lost = sorted(p for p, price in writers.acked.items() if p not in writers.uncertain and any(
        _product_price(projects[side], p) != price for side in ("monolith", "catalog")))
    return {
        "flips": flips, "rate": rate, "writing_seconds": round(writing, 1),
        "writes_per_second": round((writers.counts["ok"]) / writing, 1),
        "hold_seconds": [round(h, 3) for h in holds],
        "hold_p50": round(statistics.median(holds), 3) if holds else None,
        "hold_p99": round(_p99(holds), 3) if holds else None,
        "attempts_per_second": round(sum(writers.counts.values()) / writing, 1),
        "ok": writers.counts["ok"], "retried": writers.counts["retried"], "conflict": writers.counts["conflict"],
        "other": writers.counts["other"] + writers.counts["no_answer"], "others": writers.others[:10],
        "write_seconds_p50": round(statistics.median(latencies), 3) if latencies else None,
        "write_seconds_p99": round(_p99(latencies), 3) if latencies else None,
        "resent_by_proxy": int(_proxy_counter(demo, "strangler_proxy_write_resends_total") - resent_before),
        "reconcile": {k: v - reconciled_before[k] for k, v in _reconciled(demo).items()},
        "lost": len(lost), "lost_products": lost[:10], "answered_by": dict(writers.upstreams),
        "differences": sum(d["differences"] for d in differences.values()), "verify": differences,
        "owner": owner,
    }


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else values[0]
