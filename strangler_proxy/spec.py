"""Typed, immutable specs of the route file: what both traffic planes take their decisions from."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["monolith", "shadow", "canary", "service"]
# prefix: the path starts with `prefix`; exact: the path is `prefix`; pattern: the path starts with `prefix`
# read as a pattern where each `*` segment stands for one non-empty segment (`/api/products/*/rating/`).
MatchKind = Literal["prefix", "exact", "pattern"]

MODES: tuple[str, ...] = ("monolith", "shadow", "canary", "service")
MATCH_KINDS: tuple[str, ...] = ("prefix", "exact")
# Methods that never change state: only these may be retried on the monolith or shadowed by default.
SAFE_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_ROUTE_LABEL = "default"
AccessLog = Literal["buffered", "unbuffered", "off"]
# The nginx plane's access log: buffered writes once per 64 KiB or second, unbuffered once per request.
ACCESS_LOG_MODES: tuple[str, ...] = ("buffered", "unbuffered", "off")


@dataclass(frozen=True)
class Upstream:
    name: str
    url: str  # http://host:port, no path
    health_path: str = "/healthz"

    @property
    def host_port(self) -> str:
        return self.url.split("://", 1)[1]


@dataclass(frozen=True)
class DiffRules:
    ignore: tuple[str, ...] = ()  # JSON paths like "$.results[*].updated_at"
    unordered: tuple[str, ...] = ()  # JSON paths of arrays compared order-insensitively
    headers: tuple[str, ...] = ()  # response headers compared (allowlist, lowercase)
    learn_noise: bool = True


@dataclass(frozen=True)
class ShadowSpec:
    sample: float = 1.0  # share of eligible requests mirrored (0..1); sampling is done by the plane
    unsafe_methods: bool = False  # also mirror POST/PUT/PATCH/DELETE (only when the shadow writes nowhere)
    target: str | None = None  # upstream to mirror to; None = the route's other side


@dataclass(frozen=True)
class Route:
    prefix: str  # the prefix, the exact path, or the pattern (see MatchKind)
    match: MatchKind = "prefix"
    methods: frozenset[str] | None = None  # None = every method
    mode: Mode = "monolith"
    service: str | None = None  # upstream name; required unless mode == "monolith"
    weight: int = 0  # canary: percent of sticky keys sent to the service (0..100)
    shadow: ShadowSpec | None = None
    fallback: bool = False  # serve from the monolith on connect error/5xx/timeout, safe methods only
    timeout: float = 30.0  # seconds
    diff: DiffRules = field(default_factory=DiffRules)
    line: int = 0  # line of the route in the route file

    @property
    def label(self) -> str:
        """What X-Strangler-Route says for this route."""
        return self.prefix

    @property
    def pattern_lead(self) -> str:
        """The literal start every path matched by this route has (the whole prefix unless it is a pattern)."""
        return self.prefix.split("*", 1)[0]

    @property
    def pattern_source(self) -> str:
        """Regex (valid for Python and nginx's PCRE) matching the start of the paths of a pattern route."""
        return "^" + "[^/]+".join(re.escape(part) for part in self.prefix.split("*"))

    def accepts_method(self, method: str) -> bool:
        return self.methods is None or method.upper() in self.methods


@dataclass(frozen=True)
class StickySpec:
    cookie: str = "strangler_uid"
    header: str | None = "X-User-Id"


@dataclass(frozen=True)
class OverrideSpec:
    header: str = "X-Strangler-Force"
    secret_env: str = "STRANGLER_OVERRIDE_SECRET"


@dataclass(frozen=True)
class ProxySettings:
    route_headers: bool = True  # add X-Strangler-Route / X-Strangler-Upstream to responses
    max_body_bytes: int = 10 * 1024 * 1024
    diff_endpoint: str = "127.0.0.1:8790"  # host:port where the nginx plane mirrors shadow traffic
    access_log: AccessLog = "buffered"  # the nginx plane's access log (see ACCESS_LOG_MODES)
    health_path: str = "/healthz"  # upstreams' health check path unless one sets its own (route file settings)


@dataclass(frozen=True)
class RouteTable:
    upstreams: Mapping[str, Upstream]
    monolith: str  # name of the monolith upstream
    routes: tuple[Route, ...]
    sticky: StickySpec = field(default_factory=StickySpec)
    override: OverrideSpec = field(default_factory=OverrideSpec)
    settings: ProxySettings = field(default_factory=ProxySettings)
    source: str = "<memory>"
    digest: str = ""


# Headers on the copy the nginx plane mirrors to the diff endpoint: which route it was and which upstreams the
# endpoint should compare (the client was served by the primary; the shadow is the candidate).
MIRROR_ROUTE_HEADER = "X-Strangler-Mirror-Route"
MIRROR_PRIMARY_HEADER = "X-Strangler-Mirror-Primary"
MIRROR_SHADOW_HEADER = "X-Strangler-Mirror-Shadow"
