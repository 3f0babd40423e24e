"""The pure routing core: normalise the path, pick the route, pick the upstream. No I/O; both planes call it."""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from strangler_proxy.murmur import in_canary, split_bucket
from strangler_proxy.override import verify_override
from strangler_proxy.spec import SAFE_METHODS, Route, RouteTable, ops_prefix

_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")
_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_METHOD = re.compile(r"^[A-Z_-]{1,32}\Z")
_QUERY_OR_FRAGMENT = re.compile(r"[?#]")
# What makes a path need the full normalisation: escapes, backslashes, NUL, `//`, and `.`/`..` segments (any
# `/.`, so `/.well-known` takes the long way too, with the same answer).
_NEEDS_WORK = re.compile(r"[%\\\x00]|//|/\.")


class PathRejected(ValueError):
    """A path that cannot be normalised safely (or a malformed method); both planes answer 400."""


class OpsHidden(LookupError):
    """An ops path (spec.OPS_PREFIXES) the route file does not expose; both planes answer 404."""


def normalize_path(raw_path: str) -> str:
    """The path a request is routed by, computed the way nginx computes `$uri`.

    Query and fragment are dropped; %XX is decoded once; `//` collapses; `.` and `..` segments resolve.
    Rejected (400 in both planes): encoded slash (%2F) and backslash (raw or %5C), since servers disagree
    about them; NUL; malformed %-escapes; `..` above the root; anything not starting with `/`
    (absolute-form `http://host/...`, `*`).
    """
    path = _QUERY_OR_FRAGMENT.split(raw_path, maxsplit=1)[0]
    if path.startswith("/") and not _NEEDS_WORK.search(path):
        return path  # nothing to decode, merge, resolve or refuse: the common case, without the byte round trip
    return _normalize_in_full(path, raw_path)


def _normalize_in_full(path: str, raw_path: str) -> str:
    """normalize_path's work on a path without its query and fragment (``raw_path`` only for the message)."""
    if not path.startswith("/"):
        raise PathRejected(f"request target must start with '/': {raw_path[:80]!r}")
    raw = path.encode("utf-8", "surrogateescape")
    if _BAD_PERCENT.search(raw):
        raise PathRejected("malformed percent-escape in path")
    if b"\\" in raw:
        raise PathRejected("backslash in path")
    lowered = raw.lower()
    if b"%2f" in lowered or b"%5c" in lowered:
        raise PathRejected("encoded slash or backslash in path")
    decoded = _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), raw)
    if b"\x00" in decoded:
        raise PathRejected("NUL in path")
    segments = decoded.split(b"/")[1:]
    resolved: list[bytes] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == b"" and not last:
            continue  # merge_slashes
        if segment == b".":
            segment = b""
            if not last:
                continue
        elif segment == b"..":
            if not resolved:
                raise PathRejected("path escapes above the root")
            resolved.pop()
            if not last:
                continue
            segment = b""
        resolved.append(segment)
    if not resolved:
        resolved = [b""]
    return "/" + b"/".join(resolved).decode("utf-8", "surrogateescape")


def parse_cookie_header(value: str) -> dict[str, str]:
    """Cookies from a Cookie header; the first of duplicate names wins, as nginx's $cookie_<name> does."""
    cookies: dict[str, str] = {}
    for part in value.split(";"):
        name, sep, val = part.strip().partition("=")
        if sep and name and name not in cookies:
            cookies[name] = val.strip()
    return cookies


@dataclass(frozen=True)
class RequestInfo:
    method: str
    path: str  # raw request target path, may include the query string
    headers: Mapping[str, str] = field(default_factory=dict)  # lowercased keys
    cookies: Mapping[str, str] = field(default_factory=dict)
    client_addr: str = ""  # the client as trusted_proxies resolve it (client_address), not always the peer
    fresh_uid: str = ""  # the id the plane sets as the sticky cookie if the client has none (sticky_cookie_wanted)


@dataclass(frozen=True)
class Decision:
    route: Route | None  # None = no route matched: the monolith serves it
    primary: str  # upstream that serves the response
    shadow: str | None  # shadow candidate (the plane samples it); never the primary
    fallback: str | None  # upstream to retry on connect error/5xx/timeout (safe methods only)
    bucket: int | None  # canary bucket 0..9999 of the sticky key (canary routes only)
    overridden: bool
    path: str  # normalised
    reason: str  # human readable, for `explain` and logs

    @property
    def route_label(self) -> str:
        return self.route.label if self.route else "default"


_KIND_RANK = {"exact": 2, "prefix": 1, "pattern": 0}


@functools.lru_cache(maxsize=1024)
def _pattern(source: str) -> re.Pattern:
    return re.compile(source)


def route_rank(route: Route) -> tuple[int, int, bool]:
    """Longer wins (a pattern's `*` counts as one character); at the same length exact > prefix > pattern;
    then a route listing methods beats one taking every method."""
    return len(route.prefix), _KIND_RANK[route.match], route.methods is not None


def route_matches_path(route: Route, path: str) -> bool:
    if route.match == "exact":
        return path == route.prefix
    if route.match == "pattern":
        return _pattern(route.pattern_source).match(path) is not None
    return path.startswith(route.prefix)


def route_match(routes: Sequence[Route], *, path: str, method: str, exact_allowed: bool = True) -> Route | None:
    """The best route (route_rank) among routes matching the path and accepting the method, or None."""
    method = method.upper()
    best: Route | None = None
    for route in routes:
        if not route.accepts_method(method) or (route.match == "exact" and not exact_allowed):
            continue
        if route_matches_path(route, path) and (best is None or route_rank(route) > route_rank(best)):
            best = route
    return best


def sticky_key(table: RouteTable, req: RequestInfo) -> str:
    """The sticky cookie if present, else the sticky header, else the fresh id the plane is about to set as the
    cookie (so the first answer and the following ones agree), else the client address (nginx: maps)."""
    sticky = table.sticky
    value = req.cookies.get(sticky.cookie) or ""
    if not value and sticky.header:
        value = req.headers.get(sticky.header.lower()) or ""
    return value or (req.fresh_uid if sticky.set_cookie else "") or req.client_addr


def sticky_cookie_wanted(table: RouteTable, *, cookies: Mapping[str, str], headers: Mapping[str, str]) -> bool:
    """Whether the answer sets the sticky cookie: the route file wants it and the client sent neither the
    cookie nor the sticky header (a client keyed by its header keeps that key)."""
    sticky = table.sticky
    if not sticky.set_cookie or cookies.get(sticky.cookie):
        return False
    return not (sticky.header and headers.get(sticky.header.lower()))


@functools.lru_cache(maxsize=64)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


@functools.lru_cache(maxsize=4096)  # a few peers (the load balancers) ask every time: parse them once
def _trusted(address: str, cidrs: tuple[str, ...]) -> bool | None:
    """Whether the address is in one of the CIDRs; None when it is not an address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _networks(cidrs))


def client_address(peer: str, forwarded_for: str | None, trusted_proxies: tuple[str, ...]) -> str:
    """The client address as nginx's real_ip module finds it (real_ip_header X-Forwarded-For, real_ip_recursive
    on): the peer unless it is a trusted proxy; then, from the right of X-Forwarded-For, the first address that
    is not a trusted proxy (the leftmost when all are). An entry that is not an address ends the walk there."""
    if not trusted_proxies or not forwarded_for:
        return peer
    if not _trusted(peer, trusted_proxies):
        return peer
    client = peer
    for entry in reversed(forwarded_for.split(",")):
        entry = entry.strip()
        trusted = _trusted(entry, trusted_proxies)
        if trusted is None:
            return client
        client = entry
        if not trusted:
            return client
    return client


def shadow_target(table: RouteTable, route: Route, *, primary: str, method: str) -> str | None:
    """Where a request on this route is mirrored to, before sampling: None when the route does not shadow it."""
    if route.mode == "shadow":
        spec_target = route.shadow.target if route.shadow else None
        target = spec_target or route.service
    elif route.shadow is not None:
        target = route.shadow.target or (route.service if primary == table.monolith else table.monolith)
    else:
        return None
    unsafe_ok = route.shadow.unsafe_methods if route.shadow else False
    if method.upper() not in SAFE_METHODS and not unsafe_ok:
        return None
    if target == primary:
        return None
    return target


def decide(table: RouteTable, req: RequestInfo, *, override_secret: str | None) -> Decision:
    """The routing decision for one request. Raises PathRejected for requests both planes answer with 400, and
    OpsHidden for those they answer with 404 (before any override: a token does not open ops paths)."""
    if not _METHOD.match(req.method):
        # Methods are case-sensitive (RFC 9110) and nginx refuses anything but [A-Z_-]: so do both planes.
        raise PathRejected(f"invalid method {req.method[:20]!r}")
    path = normalize_path(req.path)
    hidden = ops_prefix(path)
    if hidden is not None and hidden not in table.settings.exposed_ops:
        raise OpsHidden(f"{hidden} is not exposed through the proxy (settings.exposed_ops)")
    method = req.method
    route = route_match(table.routes, path=path, method=method)
    forced_value = req.headers.get(table.override.header.lower())
    forced = verify_override(override_secret, forced_value, table.upstreams, method=method)
    label = route.label if route else "default"
    if forced is not None:
        return Decision(route, forced, None, None, None, True, path, f"route {label}: forced to {forced} by override")
    if route is None:
        return Decision(None, table.monolith, None, None, None, False, path, "no route matched: monolith")
    bucket: int | None = None
    if route.mode == "service":
        primary, why = route.service, f"route {label} (line {route.line}): service mode"
    elif route.mode == "canary":
        key = sticky_key(table, req)
        bucket = split_bucket(key)
        if in_canary(key, route.weight):
            primary, why = route.service, f"canary {route.weight}%: bucket {bucket} < {route.weight * 100}"
        else:
            primary, why = table.monolith, f"canary {route.weight}%: bucket {bucket} >= {route.weight * 100}"
        why = f"route {label} (line {route.line}): {why}"
    else:
        primary, why = table.monolith, f"route {label} (line {route.line}): {route.mode} mode"
    assert primary is not None  # the loader requires a service for every mode but monolith
    shadow = shadow_target(table, route, primary=primary, method=method)
    fallback = None
    if route.fallback and primary != table.monolith and method in SAFE_METHODS:
        fallback = table.monolith
    if shadow:
        why += f"; shadow to {shadow}"
    if fallback:
        why += f"; falls back to {fallback}"
    return Decision(route, primary, shadow, fallback, bucket, False, path, why)
