"""Shadow traffic: replay a request to a second upstream off the request path and diff the two answers.

The client never waits for a shadow: jobs are started after the primary response is ready, at most
``max_pending`` at a time; beyond that new jobs are dropped (and counted) rather than queued without end.
From a thread (the nginx diff endpoint, tests) a job runs whole on a small thread pool; from mitmproxy's event
loop its requests are sent by the asyncio client on that loop and only the comparison of large bodies goes to
the pool, so shadow I/O never contends with the proxy's own work for the interpreter lock. On the loop, a job
given an ``IdleGate`` sends its requests and compares only once no client request is in flight (or after
``max_wait``), so its CPU goes into the loop's idle time instead of in front of other clients' requests.
The monolith is always the *expected* side of a diff, whichever upstream served the client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from strangler_proxy.diffing import DiffResult, DiffRulesLike, HttpResponseData, NoiseRegistry, response_diff
from strangler_proxy.fetch import AsyncUpstreamClient, UpstreamClient, UpstreamError

if TYPE_CHECKING:  # identity imports header_fields, which imports this module
    from strangler_proxy.identity import IdentityResolver
    from strangler_proxy.spec import IdentitySettings

logger = logging.getLogger("strangler_proxy.shadow")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Shadow jobs with requests in flight at once on an event loop: waiting sockets cost no thread, so more than
# the pool's threads, enough that shadows keep up with a saturated mitmproxy plane instead of being dropped.
ASYNC_IN_FLIGHT = 32
# Bodies up to this size (all sides together) are compared on the event loop itself: a thread hop and the
# interpreter-lock handoff back cost more than such a diff (tens of microseconds); larger ones go to a thread.
INLINE_COMPARE_BYTES = 8192
# Tells the receiving upstream this request is a copy; its answer is only compared, never served.
SHADOW_HEADER = "X-Strangler-Shadow"


@dataclass(frozen=True)
class ShadowJob:
    route: str  # route label (prefix or "default")
    rules: DiffRulesLike
    method: str
    path: str  # path with query string, as forwarded
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    monolith: str  # upstream name of the monolith
    primary: str  # upstream that served (or would serve) the client
    shadow: str  # upstream the copy goes to
    upstream_urls: dict[str, str]
    primary_response: HttpResponseData | None = None  # None: fetch it too (the nginx diff endpoint case)
    request_id: str | None = None
    timeout: float = 30.0
    host: str | None = None  # Host header the client sent; None = the upstream's own host:port
    # settings.identity of the table: a copy to an identity upstream carries the signed identity a client request
    # would (``headers`` never has the client's own); None: no upstream gets one
    identity: IdentitySettings | None = None


class IdleGate:
    """Client requests in flight on one event loop; shadow work waits for none to be (at most ``max_wait``).

    The proxy marks each client request in (``enter``) and out (``leave``, once it is answered or failed);
    anything it forgets is forgotten with the flow itself (weak references), so the gate cannot stay shut.
    """

    def __init__(self, *, max_wait: float = 0.05):
        self.max_wait = max_wait  # under saturation the loop is never idle: shadows then go anyway, this late
        self._busy: weakref.WeakSet = weakref.WeakSet()
        self._waiters: set[asyncio.Future] = set()

    @property
    def busy(self) -> int:
        return len(self._busy)

    def enter(self, request: object) -> None:
        self._busy.add(request)

    def leave(self, request: object) -> None:
        self._busy.discard(request)
        if self._waiters and not self._busy:
            waiters, self._waiters = self._waiters, set()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def idle(self) -> None:
        """Return once no request is in flight, or after ``max_wait``."""
        if not self._busy:
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.add(waiter)
        timer = loop.call_later(self.max_wait, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiters.discard(waiter)


def _wake(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


class DiffStore:
    """Counters per route, the learned noise, and a bounded sample of differing exchanges (JSON lines)."""

    def __init__(self, *, samples_path: str | Path | None = None, max_samples_per_route: int = 20,
                 recent: int = 50):
        self.noise = NoiseRegistry()
        self.samples_path = Path(samples_path) if samples_path else None
        self.max_samples_per_route = max_samples_per_route
        self._lock = threading.Lock()
        self.comparisons: Counter[str] = Counter()
        self.diffs: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.fields: dict[str, Counter[str]] = {}
        self._samples_written: Counter[str] = Counter()
        self._recent: deque[dict] = deque(maxlen=recent)
        if self.samples_path is not None:
            self.samples_path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, job: ShadowJob, result: DiffResult, *, expected_status: int, actual_status: int) -> None:
        sample = None
        with self._lock:
            self.comparisons[job.route] += 1
            if result.equal:
                return
            self.diffs[job.route] += 1
            fields = self.fields.setdefault(job.route, Counter())
            for difference in result.differences:
                fields[difference.path] += 1
            sample = {
                "ts": round(time.time(), 3), "route": job.route, "method": job.method, "path": job.path,
                "request_id": job.request_id, "expected_upstream": job.monolith,
                "actual_upstream": job.shadow if job.primary == job.monolith else job.primary,
                "expected_status": expected_status, "actual_status": actual_status,
                "differences": [d.as_dict() for d in result.differences[:50]],
                "noise_skipped": list(result.noise_skipped),
            }
            self._recent.append(sample)
            write = self.samples_path is not None and self._samples_written[job.route] < self.max_samples_per_route
            if write:
                self._samples_written[job.route] += 1
                with self.samples_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(sample, default=str, ensure_ascii=False) + "\n")

    def record_error(self, route: str, reason: str) -> None:
        with self._lock:
            (self.dropped if reason == "dropped" else self.errors)[route] += 1

    def summary(self) -> dict:
        with self._lock:
            routes = sorted(set(self.comparisons) | set(self.errors) | set(self.dropped))
            by_route = {
                route: {
                    "comparisons": self.comparisons[route],
                    "diffs": self.diffs[route],
                    "diff_rate": round(self.diffs[route] / max(self.comparisons[route], 1), 4),
                    "errors": self.errors[route],
                    "dropped": self.dropped[route],
                    "top_fields": dict(self.fields.get(route, Counter()).most_common(10)),
                }
                for route in routes
            }
            recent = list(self._recent)[-10:]
        return {
            "comparisons": sum(v["comparisons"] for v in by_route.values()),
            "diffs": sum(v["diffs"] for v in by_route.values()),
            "routes": by_route,
            "noise": self.noise.snapshot(),
            "noise_rules": self.noise.rules(),  # with evidence, comparisons suppressed, first/last seen
            "noise_file": str(self.noise.path) if self.noise.path else None,
            "samples_file": str(self.samples_path) if self.samples_path else None,
            "recent": recent,
        }


class ShadowRunner:
    """Runs shadow jobs on a small thread pool; ``submit`` never blocks."""

    def __init__(
        self, *, store: DiffStore, client: UpstreamClient | None = None, max_workers: int = 4,
        max_pending: int = 256, on_compared: Callable[[ShadowJob, DiffResult], None] | None = None,
        on_error: Callable[[ShadowJob, str], None] | None = None, identity: IdentityResolver | None = None,
    ):
        self.store = store
        self.identity = identity  # signs copies to identity upstreams (jobs with ``identity`` settings)
        self.client = client or UpstreamClient()
        self.max_pending = max_pending
        self._on_compared = on_compared
        self._on_error = on_error
        self.max_workers = max_workers
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="strangler-shadow")
        self._pending = 0
        self._lock = threading.Lock()
        self._slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> Semaphore
        self._tasks: set[asyncio.Task] = set()  # strong references: the loop keeps only weak ones

    def _reserve(self, job: ShadowJob) -> bool:
        with self._lock:
            full = self._pending >= self.max_pending
            if not full:
                self._pending += 1
        if full:
            self._error(job, "dropped")
        return not full

    def submit(self, job: ShadowJob) -> bool:
        """Run the job on the thread pool; False (and counted as dropped) when ``max_pending`` are in flight."""
        if not self._reserve(job):
            return False
        future = self._executor.submit(self._run_guarded, job)
        future.add_done_callback(self._done)
        return True

    def submit_async(self, job: ShadowJob, client: AsyncUpstreamClient, *, gate: IdleGate | None = None) -> bool:
        """From a running event loop: send the job's requests on that loop (``ASYNC_IN_FLIGHT`` jobs at a
        time), compare small bodies there and large ones on the thread pool; with a ``gate``, each of those
        steps first waits for the loop to have no client request in flight. Same dropping, errors and recording
        as ``submit``."""
        if not self._reserve(job):
            return False
        task = asyncio.get_running_loop().create_task(self._run_async_guarded(job, client, gate))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return True

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._done(task)

    def _done(self, _future) -> None:
        with self._lock:
            self._pending -= 1

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def _error(self, job: ShadowJob, reason: str) -> None:
        if self._on_error is not None:
            self._on_error(job, reason)
        self.store.record_error(job.route, reason)

    def _run_guarded(self, job: ShadowJob) -> DiffResult | None:
        try:
            return self.run(job)
        except UpstreamError as exc:
            logger.info("shadow request failed: route=%s %s %s: %s", job.route, job.method, job.path, exc)
            self._error(job, exc.reason)
        except Exception:  # a shadow must never take the proxy down; keep the traceback for the log
            logger.exception("shadow comparison crashed: route=%s %s %s", job.route, job.method, job.path)
            self._error(job, "crash")
        return None

    async def _run_async_guarded(self, job: ShadowJob, client: AsyncUpstreamClient,
                                 gate: IdleGate | None = None) -> DiffResult | None:
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(max(self.max_workers, ASYNC_IN_FLIGHT))
        try:
            if gate is not None:  # before taking a slot: waiting jobs are bounded by max_pending, not the slots
                await gate.idle()
            async with slots:
                primary = job.primary_response
                if primary is None:
                    primary = await client.fetch(**await self._request_async(job, job.primary))
                shadowed = await client.fetch(**await self._request_async(job, job.shadow))
                expected_again = None
                if _learns_noise(job):
                    expected_again = await client.fetch(**await self._request_async(job, job.monolith))
            sides = (primary, shadowed, expected_again)
            if gate is not None:
                await gate.idle()
            if sum(len(side.body) for side in sides if side is not None) <= INLINE_COMPARE_BYTES:
                return self._compare(job, primary, shadowed, expected_again)
            return await loop.run_in_executor(self._executor, self._compare, job, primary, shadowed, expected_again)
        except UpstreamError as exc:
            logger.info("shadow request failed: route=%s %s %s: %s", job.route, job.method, job.path, exc)
            self._error(job, exc.reason)
        except Exception:  # a shadow must never take the proxy down; keep the traceback for the log
            logger.exception("shadow comparison crashed: route=%s %s %s", job.route, job.method, job.path)
            self._error(job, "crash")
        return None

    async def _request_async(self, job: ShadowJob, upstream: str) -> dict:
        identity = ()
        if self.identity is not None and job.identity is not None:
            identity = await self.identity.copy_headers(job, upstream)
        return self._request(job, upstream, identity)

    @staticmethod
    def _request(job: ShadowJob, upstream: str, identity: tuple[tuple[str, str], ...] = ()) -> dict:
        return {"base_url": job.upstream_urls[upstream], "method": job.method, "path": job.path,
                "headers": [*job.headers, *identity, (SHADOW_HEADER, "1")], "body": job.body,
                "timeout": job.timeout, "host_header": job.host}

    def _fetch(self, job: ShadowJob, upstream: str) -> HttpResponseData:
        identity = ()
        if self.identity is not None and job.identity is not None:
            identity = self.identity.copy_headers_blocking(job, upstream, client=self.client)
        return self.client.fetch(**self._request(job, upstream, identity))

    def run(self, job: ShadowJob) -> DiffResult:
        """Fetch what is missing, diff monolith vs service, record the result (synchronously)."""
        primary = job.primary_response if job.primary_response is not None else self._fetch(job, job.primary)
        shadowed = self._fetch(job, job.shadow)
        expected_again = self._fetch(job, job.monolith) if _learns_noise(job) else None
        return self._compare(job, primary, shadowed, expected_again)

    def _compare(self, job: ShadowJob, primary: HttpResponseData, shadowed: HttpResponseData,
                 expected_again: HttpResponseData | None) -> DiffResult:
        if job.primary == job.monolith:
            expected, actual = primary, shadowed
        else:
            expected, actual = shadowed, primary
        result = response_diff(
            expected=expected, actual=actual, rules=job.rules, route=job.route, noise=self.store.noise,
            expected_again=expected_again,
        )
        # Callbacks (metrics) first: whoever sees the comparison in the summary finds it counted there too.
        if self._on_compared is not None:
            self._on_compared(job, result)
        self.store.record(job, result, expected_status=expected.status, actual_status=actual.status)
        return result

    def shutdown(self, *, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=not wait)


def _learns_noise(job: ShadowJob) -> bool:
    # The second monolith call must not repeat a write, so noise is only learned from safe methods.
    return job.rules.learn_noise and job.method in SAFE_METHODS
