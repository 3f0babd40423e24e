"""Verify: compare an aggregate between two projects over HTTP only (their ``/sync/checksums/`` endpoints).

Neither side's database is read by the verifier. It fetches both sides' bucket checksums over the
union of their id ranges, and drills only into buckets that differ: small buckets are compared row
by row, large ones are split again. Works without Django (``strangler-sync verify``).

Keys: ids are reported as integers; for aggregates whose checksum answers say ``"keys": "hash"`` (UUID or
str keys, bucketed by a hash of the key) the ranges are hash positions and the keys are reported as text.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

ROW_DRILL_LIMIT = 5000  # a differing bucket with at most this many rows per side is compared row by row
MAX_BUCKETS = 400  # buckets one checksum answer holds at most (the endpoint refuses more: each costs a hash pass)
# Where both sides find the shared token when settings do not say (STRANGLER_SYNC["VERIFY_TOKEN"] on the server).
VERIFY_TOKEN_ENV = "STRANGLER_SYNC_VERIFY_TOKEN"


@dataclass
class VerifyResult:
    aggregate: str
    source_count: int = 0
    follower_count: int = 0
    missing: list[int | str] = field(default_factory=list)  # in source, not in follower
    extra: list[int | str] = field(default_factory=list)  # in follower, not in source
    changed: list[int | str] = field(default_factory=list)  # in both, different canonical state
    text_keys: bool = False  # UUID/str keys: reported as their text
    buckets_compared: int = 0
    buckets_differing: int = 0
    requests: int = 0
    seconds: float = 0.0

    @property
    def differences(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.changed)

    def as_dict(self) -> dict:
        return {
            "aggregate": self.aggregate, "source_count": self.source_count, "follower_count": self.follower_count,
            "missing": self.missing, "extra": self.extra, "changed": self.changed,
            "differences": self.differences, "buckets_compared": self.buckets_compared,
            "buckets_differing": self.buckets_differing, "requests": self.requests,
            "seconds": round(self.seconds, 3),
        }


class VerifyError(RuntimeError):
    pass


def checksum_url(base: str, aggregate: str) -> str:
    base = base.rstrip("/")
    if not base.endswith("/sync"):
        base += "/sync"
    return f"{base}/checksums/{aggregate}/"


class _Side:
    def __init__(self, base: str, aggregate: str, session: requests.Session, result: VerifyResult, timeout: float):
        self.url = checksum_url(base, aggregate)
        self.session = session
        self.result = result
        self.timeout = timeout

    def get(self, **params) -> dict:
        self.result.requests += 1
        try:
            response = self.session.get(self.url, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise VerifyError(f"{self.url}: {exc}") from exc
        if response.status_code != 200:
            raise VerifyError(f"{self.url} answered {response.status_code}: {response.text[:300]}")
        return response.json()


def verify_aggregate(
    *, source: str, follower: str, aggregate: str, buckets: int = 256, timeout: float = 120.0,
    session: requests.Session | None = None, token: str | None = None,
) -> VerifyResult:
    """Compare ``aggregate`` between the two projects. ``token``: what their checksum endpoints expect
    (default: $STRANGLER_SYNC_VERIFY_TOKEN)."""
    if not 1 <= buckets <= MAX_BUCKETS:
        raise VerifyError(f"buckets must be between 1 and {MAX_BUCKETS}, not {buckets}")
    token = token if token is not None else os.environ.get(VERIFY_TOKEN_ENV, "")
    if not token:
        raise VerifyError(f"no verify token: set ${VERIFY_TOKEN_ENV} (the projects' STRANGLER_SYNC['VERIFY_TOKEN'])")
    started = time.perf_counter()
    result = VerifyResult(aggregate=aggregate)
    session = session or requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    src = _Side(source, aggregate, session, result, timeout)
    fol = _Side(follower, aggregate, session, result, timeout)
    src_stats, fol_stats = _both(src, fol)
    result.source_count, result.follower_count = src_stats["count"], fol_stats["count"]
    kinds = {s.get("keys", "range") for s in (src_stats, fol_stats) if s["count"]}
    if len(kinds) > 1:
        raise VerifyError("one side buckets keys by range, the other by hash: the aggregate's key_type differs")
    result.text_keys = kinds == {"hash"}
    lows = [s["min_id"] for s in (src_stats, fol_stats) if s["min_id"] is not None]
    highs = [s["max_id"] for s in (src_stats, fol_stats) if s["max_id"] is not None]
    if lows:
        _compare_range(src, fol, result, start=min(lows), end=max(highs), buckets=buckets)
    for ids in (result.missing, result.extra, result.changed):
        ids.sort()
    result.seconds = time.perf_counter() - started
    return result


def _both(src: _Side, fol: _Side, **params) -> tuple[dict, dict]:
    """The same query to both sides at once: each hashes its own rows, so the wall time is the slower side."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        left, right = pool.submit(src.get, **params), pool.submit(fol.get, **params)
        return left.result(), right.result()


def _compare_range(src: _Side, fol: _Side, result: VerifyResult, *, start: int, end: int, buckets: int) -> None:
    left_answer, right_answer = _both(src, fol, buckets=buckets, start=start, end=end)
    _same_format(left_answer, right_answer)
    a, b = left_answer["buckets"], right_answer["buckets"]
    if [(x["start"], x["end"]) for x in a] != [(x["start"], x["end"]) for x in b]:
        raise VerifyError("the two sides split the id range differently (different strangler_sync versions?)")
    result.buckets_compared += len(a)
    for left, right in zip(a, b, strict=True):
        if left["checksum"] == right["checksum"] and left["count"] == right["count"]:
            continue
        result.buckets_differing += 1
        lo, hi = left["start"], left["end"]
        if max(left["count"], right["count"]) <= ROW_DRILL_LIMIT or hi - lo < buckets:
            _compare_rows(src, fol, result, start=lo, end=hi)
        else:
            _compare_range(src, fol, result, start=lo, end=hi, buckets=buckets)


def _same_format(left: dict, right: dict) -> None:
    """Hashes in different formats differ on every row: say so instead of reporting every id as changed."""
    if left.get("hash") != right.get("hash"):
        raise VerifyError(f"the two sides hash rows differently (source {left.get('hash')!r}, follower "
                          f"{right.get('hash')!r}): run the same strangler_sync version on both")


def _compare_rows(src: _Side, fol: _Side, result: VerifyResult, *, start: int, end: int) -> None:
    left_answer, right_answer = _both(src, fol, start=start, end=end)
    _same_format(left_answer, right_answer)
    left, right = left_answer["rows"], right_answer["rows"]
    key = str if result.text_keys else int
    for row_id, digest in left.items():
        other = right.get(row_id)
        if other is None:
            result.missing.append(key(row_id))
        elif other != digest:
            result.changed.append(key(row_id))
    result.extra.extend(key(row_id) for row_id in right if row_id not in left)
