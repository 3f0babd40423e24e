"""Learned diff noise: leaf fields that differ between two answers of the monolith to the same request.

Noise is learned per concrete field path (``$.results[3].updated_at``, ``header:x-request-id``) and is only
generalised to ``$.results[*].updated_at`` once that same leaf has differed in ``generalise_after`` items of
the list. A rule never covers a subtree, and it suppresses only the kinds of difference it was seen with
("changed", "type", ...): a field the service drops entirely is still reported. What the two monolith
answers say about *data* changing in between is not learned: when a list changed length, or an item of it
became another record (its ``id`` changed), nothing inside that list or item is noise, since every index
after an insert differs.

Each rule keeps its evidence (monolith answer pairs it differed in), how many comparisons it suppressed,
and when it was first and last seen; a rule not seen again for ``expiry`` seconds stops applying. With a
``path`` the rules are loaded at start and saved atomically (temporary file, fsync, rename), at once when a
rule appears and otherwise at most every ``save_interval`` seconds, and on ``flush()``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from servicekit.files import file_write_atomic
from strangler_proxy.spec import NoiseSettings

logger = logging.getLogger("strangler_proxy.noise")

FILE_VERSION = 1
DEFAULT_EXPIRY = NoiseSettings.expiry  # a week without being seen again: the field is no longer noisy
DEFAULT_GENERALISE_AFTER = NoiseSettings.generalise_after
DEFAULT_MIN_EVIDENCE = NoiseSettings.min_evidence
DEFAULT_SAVE_INTERVAL = 2.0
# Keys naming the record a list item is; when one differs, the two answers list different records there.
IDENTITY_KEYS = ("id", "pk", "uuid")

_INDEX = re.compile(r"\[\d+\]")
_TRAILING_INDEX = re.compile(r"^(?P<list>.*)\[\d+\]$")
_ITEM_IDENTITY = re.compile(r"^(?P<item>.*\[\d+\])\.(?:" + "|".join(IDENTITY_KEYS) + r")$")


class DifferenceLike(Protocol):
    path: str
    kind: str
    expected: Any
    actual: Any


def generalise_path(path: str) -> str:
    """``$.results[3].price`` -> ``$.results[*].price`` (the form ignore rules are written in)."""
    return _INDEX.sub("[*]", path)


def _under(path: str, prefixes: set[str]) -> bool:
    return any(path == p or path.startswith((p + ".", p + "[")) for p in prefixes)


def noise_candidates(self_differences: Iterable[DifferenceLike]) -> list[DifferenceLike]:
    """The differences between two monolith answers that can be noise: leaves that changed in place.

    Left out: the status (it would hide every status difference), values that are objects or lists (a rule
    would cover a subtree), anything inside a list whose length changed or inside an item whose identity
    changed (a concurrent write, not noise), and the items added or removed themselves.
    """
    differences = list(self_differences)
    resized: set[str] = set()
    replaced: set[str] = set()
    for d in differences:
        resized_match = _TRAILING_INDEX.match(d.path)
        if resized_match and d.kind in ("missing", "added"):
            resized.add(resized_match.group("list"))
        identity_match = _ITEM_IDENTITY.match(d.path)
        if identity_match:
            replaced.add(identity_match.group("item"))
    return [
        d for d in differences
        if d.path != "status"
        and not isinstance(d.expected, dict | list) and not isinstance(d.actual, dict | list)
        and not _under(d.path, resized) and not _under(d.path, replaced)
    ]


def _rule_regex(path: str) -> re.Pattern[str]:
    return re.compile(re.escape(path).replace(r"\[\*\]", r"\[\d+\]") + r"\Z")


@dataclass
class NoiseRule:
    """One learned noisy field of a route: a concrete leaf path, or its ``[*]`` form once generalised."""

    path: str
    kinds: set[str]
    evidence: int = 0  # monolith answer pairs in which it differed
    suppressed: int = 0  # comparisons in which it hid at least one difference
    first_seen: float = 0.0
    last_seen: float = 0.0
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def matches(self, difference: DifferenceLike) -> bool:
        if difference.kind not in self.kinds:
            return False
        if self._regex is None:
            self._regex = _rule_regex(self.path)
        return self._regex.match(difference.path) is not None

    def as_dict(self) -> dict:
        return {"path": self.path, "kinds": sorted(self.kinds), "evidence": self.evidence,
                "suppressed": self.suppressed, "first_seen": round(self.first_seen, 3),
                "last_seen": round(self.last_seen, 3)}

    @classmethod
    def from_dict(cls, data: dict) -> NoiseRule:
        return cls(path=str(data["path"]), kinds=set(data["kinds"]), evidence=int(data["evidence"]),
                   suppressed=int(data.get("suppressed", 0)), first_seen=float(data["first_seen"]),
                   last_seen=float(data["last_seen"]))


@dataclass(frozen=True)
class NoiseFilterResult:
    kept: tuple  # differences still reported
    suppressed: tuple  # differences hidden as noise
    rules: tuple[str, ...]  # paths of the rules that hid them, sorted


class NoiseRegistry:
    """Learned noise rules per route; thread-safe; persisted to ``path`` when one is given."""

    def __init__(self, *, path: str | Path | None = None, expiry: float | None = DEFAULT_EXPIRY,
                 generalise_after: int = DEFAULT_GENERALISE_AFTER, min_evidence: int = DEFAULT_MIN_EVIDENCE,
                 save_interval: float = DEFAULT_SAVE_INTERVAL, clock: Callable[[], float] = time.time):
        if generalise_after < 2:
            raise ValueError("generalise_after must be at least 2 (one item is a concrete path)")
        self.path = Path(path) if path else None
        self.expiry = expiry
        self.generalise_after = generalise_after
        self.min_evidence = min_evidence
        self.save_interval = save_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._by_route: dict[str, dict[str, NoiseRule]] = {}
        self._dirty = False
        self._last_save = 0.0
        if self.path is not None:
            self._load()

    # -- learning and filtering ------------------------------------------------------------------------

    def learn(self, route: str, self_differences: Iterable[DifferenceLike]) -> set[str]:
        """Record the differences between two monolith answers; returns the rule paths that are new."""
        now = self._clock()
        added: set[str] = set()
        with self._lock:
            rules = self._by_route.setdefault(route, {})
            seen: set[str] = set()
            for d in noise_candidates(self_differences):
                general = generalise_path(d.path)
                key = general if general in rules else d.path
                rule = rules.get(key)
                if rule is None:
                    rule = rules[key] = NoiseRule(path=key, kinds=set(), first_seen=now)
                    added.add(key)
                rule.kinds.add(d.kind)
                rule.last_seen = now
                if key not in seen:
                    rule.evidence += 1
                    seen.add(key)
                if key != general:
                    merged = self._generalise(rules, general)
                    if merged:
                        added.add(general)
                        seen.add(general)
            expired = self._expire(rules, now)
            self._dirty = self._dirty or bool(seen) or expired
        self._save_when_due(force=bool(added))
        return added

    def _generalise(self, rules: dict[str, NoiseRule], general: str) -> bool:
        items = [p for p in rules if p != general and generalise_path(p) == general]
        if len(items) < self.generalise_after:
            return False
        merged = NoiseRule(path=general, kinds=set(), first_seen=min(rules[p].first_seen for p in items))
        for p in items:
            rule = rules.pop(p)
            merged.kinds |= rule.kinds
            merged.evidence += rule.evidence
            merged.suppressed += rule.suppressed
            merged.last_seen = max(merged.last_seen, rule.last_seen)
        rules[general] = merged
        return True

    def _active(self, rule: NoiseRule, now: float) -> bool:
        fresh = self.expiry is None or now - rule.last_seen <= self.expiry
        return fresh and rule.evidence >= self.min_evidence

    def _expire(self, rules: dict[str, NoiseRule], now: float) -> bool:
        if self.expiry is None:
            return False
        stale = [p for p, r in rules.items() if now - r.last_seen > self.expiry]
        for path in stale:
            del rules[path]
        return bool(stale)

    def noise_filter(self, route: str, differences: Iterable[DifferenceLike], *,
                     count: bool = True) -> NoiseFilterResult:
        """Split differences into kept and suppressed; ``count`` adds one suppressed comparison per rule used."""
        now = self._clock()
        kept, hidden, used = [], [], {}
        with self._lock:
            rules = [r for r in self._by_route.get(route, {}).values() if self._active(r, now)]
            for d in differences:
                rule = next((r for r in rules if r.matches(d)), None)
                if rule is None:
                    kept.append(d)
                else:
                    hidden.append(d)
                    used[rule.path] = rule
            if count and used:
                for rule in used.values():
                    rule.suppressed += 1
                self._dirty = True
        if used:
            self._save_when_due(force=False)
        return NoiseFilterResult(tuple(kept), tuple(hidden), tuple(sorted(used)))

    # -- reading ---------------------------------------------------------------------------------------

    def paths(self, route: str) -> frozenset[str]:
        """Paths of the rules that apply to ``route`` now."""
        now = self._clock()
        with self._lock:
            return frozenset(p for p, r in self._by_route.get(route, {}).items() if self._active(r, now))

    def snapshot(self) -> dict[str, list[str]]:
        """Route -> sorted paths of the rules that apply now (routes without any left out)."""
        now = self._clock()
        with self._lock:
            out = {route: sorted(p for p, r in rules.items() if self._active(r, now))
                   for route, rules in self._by_route.items()}
        return {route: paths for route, paths in out.items() if paths}

    def rules(self) -> list[dict]:
        """Every rule with its counts, for reports: route, path, kinds, evidence, suppressed, seen, active."""
        now = self._clock()
        with self._lock:
            return [{"route": route, **rule.as_dict(), "active": self._active(rule, now)}
                    for route, rules in sorted(self._by_route.items())
                    for rule in sorted(rules.values(), key=lambda r: r.path)]

    # -- persistence -----------------------------------------------------------------------------------

    def _load(self) -> None:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("version") != FILE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {FILE_VERSION}")
            loaded = {str(route): {r.path: r for r in map(NoiseRule.from_dict, rules)}
                      for route, rules in data["routes"].items()}
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # The file is a cache of what was learned: starting empty reports more differences, never fewer.
            logger.warning("noise file %s unreadable, starting without learned noise: %s", self.path, exc)
            return
        now = self._clock()
        for rules in loaded.values():
            self._expire(rules, now)
        self._by_route = loaded

    def save(self) -> None:
        """Write the rules to ``path`` atomically (no-op without a path)."""
        if self.path is None:
            return
        with self._save_lock:
            with self._lock:
                data = {"version": FILE_VERSION, "saved_at": round(self._clock(), 3),
                        "routes": {route: [r.as_dict() for r in sorted(rules.values(), key=lambda r: r.path)]
                                   for route, rules in sorted(self._by_route.items()) if rules}}
                self._dirty = False
                self._last_save = self._clock()
            file_write_atomic(path=self.path, data=json.dumps(data, indent=1, ensure_ascii=False))

    def _save_when_due(self, *, force: bool) -> None:
        if self.path is None or not (force or (self._dirty and self._clock() - self._last_save >= self.save_interval)):
            return
        try:
            self.save()
        except OSError as exc:  # the rules still apply in memory; the next save tries again
            logger.warning("noise file %s not saved: %s", self.path, exc)

    def flush(self) -> None:
        """Save counts changed since the last save (at shutdown)."""
        if self._dirty:
            self.save()


def noise_file_for(*, settings: NoiseSettings, route_file: str, samples_path: Path | None) -> Path | None:
    """Where a plane keeps its learned noise: the route file's ``settings.noise.file`` (relative to the route
    file's folder), else beside the plane's sample of differences (``diffs.jsonl`` -> ``diffs.noise.json``),
    else nowhere (memory only)."""
    if settings.file:
        path = Path(settings.file).expanduser()
        return path if path.is_absolute() else Path(route_file).resolve().parent / path
    if samples_path is not None:
        return Path(samples_path).with_suffix(".noise.json")
    return None


def noise_registry_for(*, settings: NoiseSettings, path: Path | None,
                       current: NoiseRegistry | None = None) -> NoiseRegistry:
    """The registry a plane should use under ``settings``: ``current`` retuned when it keeps the same file
    (a route file reload), else a new one loaded from ``path`` (``current`` saved first)."""
    if current is not None and current.path == path:
        current.expiry = settings.expiry
        current.generalise_after = settings.generalise_after
        current.min_evidence = settings.min_evidence
        return current
    if current is not None:
        current.flush()
    return NoiseRegistry(path=path, expiry=settings.expiry, generalise_after=settings.generalise_after,
                         min_evidence=settings.min_evidence)
