"""Compare a monolith response with a service response: status, allowlisted headers, JSON bodies.

JSON paths use a small subset: ``$`` is the document, ``.name`` a key, ``[3]`` an index and ``[*]`` any
index (``.*`` any key). A concrete difference path such as ``$.results[3].price`` is *generalised* to
``$.results[*].price`` before it is matched against ignore rules or learned noise, so one rule covers
every element of a list.

Noise is learned the Diffy way: the monolith is called twice; leaf fields that differ between its own two
answers (timestamps, random tokens) are noise for that route (``strangler_proxy.noise``: per concrete path,
with evidence and an expiry) and the differences they explain are reported apart, not counted as diffs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from strangler_proxy.noise import NoiseRegistry, generalise_path


class DiffRulesLike(Protocol):
    """What the diff needs from ``strangler_proxy.spec.DiffRules``."""

    ignore: tuple[str, ...]
    unordered: tuple[str, ...]
    headers: tuple[str, ...]
    learn_noise: bool


@dataclass(frozen=True)
class HttpResponseData:
    """One side of a comparison: what an upstream answered."""

    status: int
    headers: Mapping[str, str]  # lowercase keys; repeated headers joined with ", "
    body: bytes
    header_pairs: tuple[tuple[str, str], ...] = ()  # wire order, repeats (Set-Cookie) kept apart
    reason: str = ""

    @classmethod
    def from_pairs(
        cls, *, status: int, header_pairs: Iterable[tuple[str, str]], body: bytes, reason: str = "",
    ) -> HttpResponseData:
        pairs = tuple((name, value) for name, value in header_pairs)
        merged: dict[str, str] = {}
        for name, value in pairs:
            lowered = name.lower()
            merged[lowered] = f"{merged[lowered]}, {value}" if lowered in merged else value
        return cls(status=status, headers=merged, body=body, header_pairs=pairs, reason=reason)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Difference:
    """One field that differs; ``path`` is concrete (``$.results[2].price``, ``status``, ``header:etag``)."""

    path: str
    expected: Any  # the monolith's value (``None`` when missing)
    actual: Any  # the service's value
    kind: str  # "changed", "missing" (only the monolith has it), "added" (only the service has it), "type"

    def as_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, "expected": self.expected, "actual": self.actual}


@dataclass(frozen=True)
class DiffResult:
    differences: tuple[Difference, ...]
    noise_skipped: tuple[str, ...] = ()  # paths of the learned noise rules that hid some differences
    suppressed: tuple[Difference, ...] = ()  # the differences those rules hid

    @property
    def equal(self) -> bool:
        return not self.differences


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    escaped = re.escape(pattern.strip())
    escaped = escaped.replace(r"\[\*\]", r"\[(?:\d+|\*)\]").replace(r"\.\*", r"\.[^.\[]+")
    # A rule also covers everything below the path it names.
    return re.compile(f"^{escaped}(?:$|[.\\[])")


class PathMatcher:
    """Matches concrete or generalised JSON paths against a set of patterns."""

    def __init__(self, patterns: Iterable[str] = ()):
        self._regexes = [_pattern_regex(p) for p in patterns if p]

    def matches(self, path: str) -> bool:
        return any(r.match(path) for r in self._regexes)

    def __bool__(self) -> bool:
        return bool(self._regexes)


def _key_path(parent: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
        return f"{parent}.{key}"
    return f"{parent}[{json.dumps(key)}]"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _normalise(value: Any, path: str, drop: PathMatcher, unordered: PathMatcher) -> Any:
    """Remove dropped fields and sort order-insensitive arrays so the structural diff sees neither."""
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            child_path = _key_path(path, str(key))
            if drop and drop.matches(generalise_path(child_path)):
                continue
            out[key] = _normalise(child, child_path, drop, unordered)
        return out
    if isinstance(value, list):
        items = [_normalise(child, f"{path}[{i}]", drop, unordered) for i, child in enumerate(value)]
        if unordered and unordered.matches(generalise_path(path)):
            items.sort(key=_canonical)
        return items
    return value


def _structural(expected: Any, actual: Any, path: str, out: list[Difference]) -> None:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in expected.keys() | actual.keys():
            child_path = _key_path(path, str(key))
            if key not in actual:
                out.append(Difference(child_path, expected[key], None, "missing"))
            elif key not in expected:
                out.append(Difference(child_path, None, actual[key], "added"))
            else:
                _structural(expected[key], actual[key], child_path, out)
        return
    if isinstance(expected, list) and isinstance(actual, list):
        for i in range(max(len(expected), len(actual))):
            child_path = f"{path}[{i}]"
            if i >= len(actual):
                out.append(Difference(child_path, expected[i], None, "missing"))
            elif i >= len(expected):
                out.append(Difference(child_path, None, actual[i], "added"))
            else:
                _structural(expected[i], actual[i], child_path, out)
        return
    # bool is an int in Python; 1 and true are different JSON values.
    if type(expected) is not type(actual) and not (
        isinstance(expected, int | float) and isinstance(actual, int | float)
        and not isinstance(expected, bool) and not isinstance(actual, bool)
    ):
        out.append(Difference(path, expected, actual, "type"))
    elif expected != actual:
        out.append(Difference(path, expected, actual, "changed"))


def _is_json(response: HttpResponseData) -> bool:
    content_type = (response.header("content-type") or "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


_NOT_JSON = object()


def _parse_json(response: HttpResponseData) -> Any:
    if not _is_json(response) or not response.body:
        return _NOT_JSON
    try:
        return json.loads(response.body)
    except ValueError:
        return _NOT_JSON


def _body_preview(body: bytes, limit: int = 200) -> str:
    text = body[:limit].decode("utf-8", "replace")
    return text + ("…" if len(body) > limit else "")


def raw_differences(
    expected: HttpResponseData, actual: HttpResponseData, *, header_allowlist: Iterable[str] = (),
    ignore: Iterable[str] = (), unordered: Iterable[str] = (),
) -> list[Difference]:
    """Every difference between two responses, after applying ignore rules and unordered arrays."""
    out: list[Difference] = []
    if expected.status != actual.status:
        out.append(Difference("status", expected.status, actual.status, "changed"))
    for name in header_allowlist:
        name = name.lower()
        a, b = expected.header(name), actual.header(name)
        if a != b:
            kind = "missing" if b is None else "added" if a is None else "changed"
            out.append(Difference(f"header:{name}", a, b, kind))
    drop, order_free = PathMatcher(ignore), PathMatcher(unordered)
    left, right = _parse_json(expected), _parse_json(actual)
    if left is _NOT_JSON or right is _NOT_JSON:
        if left is _NOT_JSON and right is _NOT_JSON:
            if expected.body != actual.body:
                out.append(Difference("body", _body_preview(expected.body), _body_preview(actual.body), "changed"))
        else:
            out.append(Difference("body", _body_preview(expected.body), _body_preview(actual.body), "type"))
        return out
    if drop and drop.matches("$"):
        return out
    _structural(_normalise(left, "$", drop, order_free), _normalise(right, "$", drop, order_free), "$", out)
    return out


def response_diff(
    *, expected: HttpResponseData, actual: HttpResponseData, rules: DiffRulesLike, route: str,
    noise: NoiseRegistry | None = None, expected_again: HttpResponseData | None = None,
) -> DiffResult:
    """Diff the monolith's answer (``expected``) against the service's (``actual``).

    With ``expected_again`` (a second monolith answer to the same request) and ``rules.learn_noise``,
    fields that differ between the two monolith answers are learned as noise for ``route`` first.
    """
    header_allowlist = tuple(h.lower() for h in rules.headers)
    if noise is not None and rules.learn_noise and expected_again is not None:
        self_diff = raw_differences(
            expected, expected_again, header_allowlist=header_allowlist, ignore=rules.ignore,
            unordered=rules.unordered,
        )
        noise.learn(route, self_diff)
    diffs = raw_differences(
        expected, actual, header_allowlist=header_allowlist, ignore=rules.ignore, unordered=rules.unordered,
    )
    if noise is None or not rules.learn_noise or not diffs:
        return DiffResult(tuple(diffs))
    filtered = noise.noise_filter(route, diffs)
    return DiffResult(filtered.kept, filtered.rules, filtered.suppressed)

