"""Shadows started from an event loop (the mitmproxy plane): requests on that loop, the same results as threads."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time

from strangler_proxy.diffing import HttpResponseData
from strangler_proxy.fetch import AsyncUpstreamClient
from strangler_proxy.shadow import ASYNC_IN_FLIGHT, SHADOW_HEADER, DiffStore, IdleGate, ShadowRunner
from strangler_proxy.spec import DiffRules
from tests.waiting import WAIT_TIMEOUT

from .test_shadow import make_job, monolith, service  # noqa: F401 - fixtures
from .upstream_servers import UpstreamServer, json_answer


async def _until_idle(runner: ShadowRunner, timeout: float = WAIT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while runner.pending and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert runner.pending == 0


def test_async_shadow_is_marked_learns_noise_and_compares_like_the_thread_path(monolith, service):  # noqa: F811
    store = DiffStore()
    compared = []
    runner = ShadowRunner(store=store, on_compared=lambda job, result: compared.append(result))
    primary = HttpResponseData.from_pairs(status=200, header_pairs=[("Content-Type", "application/json")],
                                          body=json.dumps({"items": [{"id": 1, "price": "9.99"}],
                                                           "request_no": 100}).encode())

    async def scenario() -> None:
        assert runner.submit_async(make_job(monolith, service, primary_response=primary), AsyncUpstreamClient())
        await _until_idle(runner)

    asyncio.run(scenario())
    assert [(r.equal, r.noise_skipped) for r in compared] == [(True, ("$.request_no",))]
    sent = service.received()[0]
    assert sent["headers"][SHADOW_HEADER.lower()] == "1" and sent["headers"]["x-request-id"] == "rid-7"
    assert len(monolith.received()) == 1  # the noise call only
    assert store.summary()["routes"]["/api/products/"]["comparisons"] == 1
    runner.shutdown()


def test_async_shadow_finds_a_real_difference_with_the_monolith_expected(monolith, service):  # noqa: F811
    service.handler = lambda m, p, h, b: json_answer(200, {"items": [{"id": 1, "price": "10.00"}], "request_no": 5})
    store = DiffStore()
    runner = ShadowRunner(store=store)

    async def scenario() -> None:  # no primary answer given: both sides are fetched
        assert runner.submit_async(make_job(monolith, service, rules=DiffRules(learn_noise=False)),
                                   AsyncUpstreamClient())
        await _until_idle(runner)

    asyncio.run(scenario())
    recent = store.summary()["recent"][-1]
    assert recent["expected_upstream"] == "monolith" and recent["actual_upstream"] == "catalog"
    assert {d["path"] for d in recent["differences"]} == {"$.items[0].price", "$.request_no"}
    runner.shutdown()


def test_async_submit_never_waits_and_drops_beyond_max_pending(monolith, service):  # noqa: F811
    release, answered = threading.Event(), threading.Event()

    def slow(m, p, h, b):
        release.wait(WAIT_TIMEOUT)
        answered.set()
        return json_answer(200, {})

    service.handler = slow
    errors = []
    store = DiffStore()
    runner = ShadowRunner(store=store, max_workers=1, max_pending=2, on_error=lambda job, reason: errors.append(reason))

    async def scenario() -> list[bool]:
        client = AsyncUpstreamClient()
        accepted = [runner.submit_async(make_job(monolith, service, rules=DiffRules(learn_noise=False)), client)
                    for _ in range(4)]
        assert not answered.is_set()  # a submit that waited for the shadow would return only after release
        await asyncio.sleep(0.2)
        release.set()
        await _until_idle(runner)
        return accepted

    assert asyncio.run(scenario()) == [True, True, False, False]
    assert errors == ["dropped", "dropped"]
    summary = store.summary()["routes"]["/api/products/"]
    assert (summary["comparisons"], summary["dropped"]) == (2, 2)
    runner.shutdown()


def test_async_unreachable_shadow_is_an_error_not_a_crash(monolith):  # noqa: F811
    store = DiffStore()
    runner = ShadowRunner(store=store)
    dead = UpstreamServer("dead").start()
    dead.stop()

    async def scenario() -> None:
        job = make_job(monolith, dead, primary_response=HttpResponseData(200, {}, b""))
        assert runner.submit_async(job, AsyncUpstreamClient())
        await _until_idle(runner)

    asyncio.run(scenario())
    assert store.summary()["routes"]["/api/products/"]["errors"] == 1
    runner.shutdown()


def test_large_bodies_are_compared_off_the_loop_with_the_same_result(monolith, service):  # noqa: F811
    items = [{"id": i, "name": f"product {i}", "price": "9.99"} for i in range(300)]
    drifted = [dict(item, price="10.00") if item["id"] == 7 else item for item in items]
    monolith.handler = lambda m, p, h, b: json_answer(200, {"items": items})
    service.handler = lambda m, p, h, b: json_answer(200, {"items": drifted})
    store = DiffStore()
    runner = ShadowRunner(store=store)
    compared_on = []
    runner_compare = runner._compare

    def spy(*args):
        compared_on.append(threading.current_thread() is threading.main_thread())
        return runner_compare(*args)

    runner._compare = spy

    async def scenario() -> None:
        assert runner.submit_async(make_job(monolith, service, rules=DiffRules(learn_noise=False)),
                                   AsyncUpstreamClient())
        await _until_idle(runner)

    asyncio.run(scenario())
    assert compared_on == [False]  # > INLINE_COMPARE_BYTES: a pool thread did the diff
    recent = store.summary()["recent"][-1]
    assert [d["path"] for d in recent["differences"]] == ["$.items[7].price"]
    runner.shutdown()


def test_small_bodies_are_compared_on_the_loop(monolith, service):  # noqa: F811
    runner = ShadowRunner(store=DiffStore())
    compared_on = []
    runner_compare = runner._compare
    runner._compare = lambda *args: compared_on.append(threading.current_thread()) or runner_compare(*args)

    async def scenario() -> None:
        assert runner.submit_async(make_job(monolith, service, rules=DiffRules(learn_noise=False)),
                                   AsyncUpstreamClient())
        await _until_idle(runner)

    asyncio.run(scenario())
    assert compared_on == [threading.main_thread()]
    runner.shutdown()


class _Request:
    """Stands in for a flow (the gate holds requests weakly)."""


def test_idle_gate_opens_when_the_last_request_in_flight_leaves():
    gate = IdleGate(max_wait=WAIT_TIMEOUT)  # only leave() may open it in time
    first, second = _Request(), _Request()

    async def scenario() -> list[str]:
        events = []
        await gate.idle()  # nothing in flight: no wait
        gate.enter(first)
        gate.enter(second)

        async def shadow() -> None:
            await gate.idle()
            events.append("shadow")

        task = asyncio.get_running_loop().create_task(shadow())
        await asyncio.sleep(0.05)
        gate.leave(first)
        await asyncio.sleep(0.05)
        events.append("first answered")
        gate.leave(second)
        events.append("second answered")
        await task
        return events

    assert asyncio.run(scenario()) == ["first answered", "second answered", "shadow"]
    assert gate.busy == 0 and not gate._waiters


def test_idle_gate_waits_at_most_max_wait_and_forgets_requests_that_are_gone():
    gate = IdleGate(max_wait=0.05)
    request = _Request()
    gate.enter(request)

    async def waited() -> float:
        started = time.monotonic()
        await asyncio.wait_for(gate.idle(), WAIT_TIMEOUT)  # without max_wait it would never return
        return time.monotonic() - started

    assert asyncio.run(waited()) >= 0.04  # a saturated loop never idles: shadows go anyway, late
    assert gate.busy == 1 and not gate._waiters
    del request
    gc.collect()
    assert gate.busy == 0  # a request the proxy never marked out cannot keep the gate shut


def test_async_shadow_sends_nothing_while_a_client_request_is_in_flight(monolith, service):  # noqa: F811
    runner = ShadowRunner(store=DiffStore())
    gate = IdleGate(max_wait=WAIT_TIMEOUT)  # only leave() may open it in time
    client_request = _Request()
    primary = HttpResponseData.from_pairs(status=200, header_pairs=[], body=b"{}")

    async def scenario() -> tuple[int, int]:
        gate.enter(client_request)
        job = make_job(monolith, service, primary_response=primary, rules=DiffRules(learn_noise=False))
        assert runner.submit_async(job, AsyncUpstreamClient(), gate=gate)
        await asyncio.sleep(0.2)
        sent_while_busy = len(service.received())
        gate.leave(client_request)
        await _until_idle(runner)
        return sent_while_busy, len(service.received())

    assert asyncio.run(scenario()) == (0, 1)
    assert runner.store.summary()["routes"]["/api/products/"]["comparisons"] == 1
    runner.shutdown()


def test_jobs_waiting_for_the_gate_hold_no_request_slot(monolith, service):  # noqa: F811
    runner = ShadowRunner(store=DiffStore())
    gate = IdleGate(max_wait=WAIT_TIMEOUT)  # only leave() may open it in time
    client_request = _Request()
    primary = HttpResponseData.from_pairs(status=200, header_pairs=[], body=b"{}")

    async def scenario() -> int:
        gate.enter(client_request)
        job = make_job(monolith, service, primary_response=primary, rules=DiffRules(learn_noise=False))
        for _ in range(ASYNC_IN_FLIGHT + 8):  # more waiting jobs than slots: none may be dropped or stuck
            assert runner.submit_async(job, AsyncUpstreamClient(), gate=gate)
        await asyncio.sleep(0.1)
        free_slots = runner._slots[asyncio.get_running_loop()]._value
        gate.leave(client_request)
        await _until_idle(runner)
        return free_slots

    assert asyncio.run(scenario()) == ASYNC_IN_FLIGHT
    assert runner.store.summary()["routes"]["/api/products/"]["comparisons"] == ASYNC_IN_FLIGHT + 8
    runner.shutdown()
