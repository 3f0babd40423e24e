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
WRITE_METHODS: frozenset[str] = frozenset({"POST", "PUT", "PATCH", "DELETE"})
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


HoldMode = Literal["reject", "queue"]
HOLD_MODES: tuple[str, ...] = ("reject", "queue")
HOLD_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # never held


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
    # Reads of a client that just wrote go to a side that has applied the write (strangler_proxy.read_your_writes).
    # None: on for canary and service routes whose writes go elsewhere (methods not taking every write method).
    read_your_writes: bool | None = None
    # Ownership flip (strangler_proxy.hold): writes (not GET/HEAD/OPTIONS) on the route's paths, whatever route
    # serves them, answer 503 + Retry-After ("reject"), or wait up to settings.hold_queue_seconds for the hold to
    # lift ("queue", mitmproxy plane; nginx answers 503). None: no hold.
    hold: HoldMode | None = None
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

    @property
    def reads_your_writes(self) -> bool:
        """Whether both planes send a client's reads here to a side that has its latest write (read_your_writes)."""
        if self.mode not in ("canary", "service"):
            return False
        if self.read_your_writes is not None:
            return self.read_your_writes
        return self.methods is not None and not WRITE_METHODS <= self.methods


SameSite = Literal["Strict", "Lax", "None"]
SAME_SITE_VALUES: tuple[str, ...] = ("Strict", "Lax", "None")


@dataclass(frozen=True)
class StickySpec:
    """What canary assignment keys on: the cookie, else the header, else (when the planes set the cookie) the
    fresh id they set, else the client address."""

    cookie: str = "strangler_uid"
    header: str | None = "X-User-Id"
    set_cookie: bool = True  # both planes set the cookie on an answer to a client that sent neither it nor the header
    max_age: int = 30 * 24 * 3600  # seconds
    secure: bool = False
    same_site: SameSite = "Lax"
    http_only: bool = True

    def cookie_header(self, uid: str) -> str:
        """The Set-Cookie value both planes send for a fresh id (nginx renders it with `$request_id` for uid)."""
        value = f"{self.cookie}={uid}; Path=/; Max-Age={self.max_age}; SameSite={self.same_site}"
        if self.secure or self.same_site == "None":  # browsers drop SameSite=None without Secure
            value += "; Secure"
        if self.http_only:
            value += "; HttpOnly"
        return value


@dataclass(frozen=True)
class OverrideSpec:
    header: str = "X-Strangler-Force"
    secret_env: str = "STRANGLER_OVERRIDE_SECRET"


@dataclass(frozen=True)
class NoiseSettings:
    """Learned diff noise (``strangler_proxy.noise``): where it is kept and how long a rule lives unseen."""

    file: str | None = None  # JSON file; relative to the route file's folder; None = $STRANGLER_VAR_DIR/proxy/
    expiry: float = 7 * 24 * 3600.0  # seconds a rule applies after it was last seen differing on the monolith
    generalise_after: int = 2  # items of a list a leaf must differ in before one rule covers every item
    min_evidence: int = 1  # monolith answer pairs a field must differ in before it counts as noise


@dataclass(frozen=True)
class ReadYourWritesSettings:
    """Read-your-writes routing: the cookie both planes keep per client after a write that emitted events."""

    cookie: str = "strangler_ryw"
    # mitmproxy plane: seconds a write's positions are tracked (its reads go to a side that has applied them).
    max_age: int = 60
    # Seconds a client's reads go to the owner after a write whose positions are not tracked: on the nginx plane
    # every such write (it cannot compare positions), on the mitmproxy plane a write that emitted too many.
    window: int = 5
    secret_env: str = "STRANGLER_RYW_SECRET"  # key the mitmproxy plane signs the cookie with (same on replicas)


@dataclass(frozen=True)
class IdentitySettings:
    """Identity at the edge: requests to these upstreams carry a signed identity from the monolith's endpoint."""

    upstreams: tuple[str, ...] = ()  # services that get identity; empty: off (the header is still stripped)
    endpoint: str = "/sync/identity/"  # path on the monolith upstream (servicekit.identity.views); ?audience=<upstream>
    header: str = "X-Strangler-Identity"  # the signed identity's header: always stripped from clients' requests
    cookies: tuple[str, ...] = ("sessionid",)  # cookies that are credentials (besides the Authorization header)
    timeout: float = 5.0  # seconds the endpoint may take; past it (or on any non-200) the request is refused (503)
    cache_ttl: float = 10.0  # seconds an answer is reused for the same credentials and upstream; 0 = no cache
    cache_size: int = 10000  # answers kept (mitmproxy plane: LRU in memory; nginx plane: proxy_cache entries)

    def wanted(self, upstream: str) -> bool:
        return upstream in self.upstreams


# Operators' endpoints of the projects behind the proxy: not for the public, so both planes answer a path under
# one of these (the prefix itself or below it) with 404 unless settings.exposed_ops lists it.
OPS_PREFIXES: tuple[str, ...] = ("/metrics", "/sync", "/admin")
OPS_HIDDEN_MESSAGE = "Not found."  # the 404's message on both planes: says nothing of what is behind


def ops_prefix(path: str) -> str | None:
    """The ops prefix a normalised path is under, or None."""
    for prefix in OPS_PREFIXES:
        if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
            return prefix
    return None


@dataclass(frozen=True)
class ProxySettings:
    route_headers: bool = True  # add X-Strangler-Route / X-Strangler-Upstream to responses
    diff_endpoint: str = "127.0.0.1:8790"  # host:port where the nginx plane mirrors shadow traffic
    access_log: AccessLog = "buffered"  # the nginx plane's access log (see ACCESS_LOG_MODES)
    health_path: str = "/healthz"  # upstreams' health check path unless one sets its own (route file settings)
    noise: NoiseSettings = field(default_factory=NoiseSettings)
    # Limits on what a client controls, the same on both planes (docs/topics/security.md): a request over one is refused
    # with JSON (413 body, 414 URL, 431 headers); a connection past a timeout is closed.
    max_body_bytes: int = 10 * 1024 * 1024  # nginx client_max_body_size
    max_url_bytes: int = 8000  # the request target as sent (its request line must fit in max_header_bytes)
    max_header_bytes: int = 8192  # the request line and each header line (nginx large_client_header_buffers size)
    max_header_buffers: int = 4  # all header lines together: at most this many times max_header_bytes
    max_headers: int = 100  # header lines (mitmproxy plane; nginx has no count, only the total above)
    client_header_timeout: float = 60.0  # seconds from connect (or the idle end) to a complete request head
    client_body_timeout: float = 60.0  # seconds to receive the body (nginx: between two reads)
    idle_timeout: float = 75.0  # seconds a keep-alive connection may wait for its next request
    max_connections_per_client: int = 256  # open connections per client address; 0 = no limit
    # nginx plane: seconds a service that failed (connect error or timeout) on a fallback route is skipped for
    # safe methods, which go straight to the monolith; then one request tries it again (nginx fail_timeout).
    breaker_window: int = 10
    # A held write (route `hold`) is answered 503 with this Retry-After (seconds); a queued one waits at most
    # hold_queue_seconds for the hold to lift (mitmproxy plane) before that answer.
    hold_retry_after: int = 1
    hold_queue_seconds: int = 10
    # Hosts (names, as written) and addresses/CIDRs upstreams and the diff endpoint may be on, besides loopback.
    # Link-local and cloud metadata addresses need an entry inside their own range (see loader.upstream_refusal).
    upstream_allowlist: tuple[str, ...] = ()
    # Peers (addresses/CIDRs) whose X-Forwarded-For is believed: the client address is the last address in it that
    # is not a trusted proxy (nginx real_ip with real_ip_recursive on). Empty: the peer is the client.
    trusted_proxies: tuple[str, ...] = ()
    # Ops prefixes (of OPS_PREFIXES) the proxy passes on; the others answer 404 on both planes.
    exposed_ops: tuple[str, ...] = ()
    read_your_writes: ReadYourWritesSettings = field(default_factory=ReadYourWritesSettings)
    identity: IdentitySettings = field(default_factory=IdentitySettings)

    @property
    def max_header_total_bytes(self) -> int:
        return self.max_header_bytes * self.max_header_buffers


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

# A Host header as both planes accept it (case-insensitive, whole value): a DNS name without a trailing dot, an IPv4
# address or a bracketed IPv6 one, and at most one port. No userinfo (`a@b`), no junk after a bracket.
HOST_PATTERN = (r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])"
                r"(?::[0-9]{1,5})?")

# What a client's Connection header may name: options and hop-by-hop headers, which both planes drop anyway.
# A Connection header naming any other header is refused (400) by both planes: nginx cannot strip headers
# named at run time, so neither plane forwards a request a client asked to have stripped.
CONNECTION_TOKENS: frozenset[str] = frozenset({
    "close", "keep-alive", "upgrade", "te", "trailer", "transfer-encoding", "proxy-connection",
    "proxy-authenticate", "proxy-authorization", "http2-settings",
})
