"""Render a complete, self-contained nginx.conf from a RouteTable, taking the same decisions as routing.decide().

How a request flows through the rendered config:
  1. server level: refuse what normalize_path() refuses (absolute-form targets, backslash, %2F, %5C) with 400,
     one regex on the request line; nginx itself refuses NUL, malformed escapes and `..` above the root with 400.
  2. nginx matches a `location` on its own normalised `$uri` (decoded, `//` merged, dot segments resolved), which
     is exactly what normalize_path() computes. Locations exist for every route prefix (`=` for exact routes,
     and for a prefix's name without its trailing slash, which nginx would otherwise redirect).
  3. the target (a named location) is picked by per-location maps of the override and the method: prefix/exact
     routes and method filters were resolved at render time, because a path matched by location L can only be
     matched by routes whose prefix is a prefix of L; pattern routes (`/api/products/*/rating/`, whose literal
     start is a location too) are regexes on $uri tried first, in rank order, wherever they outrank that static
     route. The location serves its most likely target (a GET's) itself; only other targets cost a jump
     (`return 599` + `error_page 599 = $var`, an internal redirect).
  4. the target proxies to the upstream (a literal, the canary `split_clients` pick, or the verified override),
     with the route's timeouts, the shadow `mirror`, and the monolith fallback for safe methods.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from servicekit.write_positions import READ_AFTER_HEADER, WRITTEN_HEADER
from strangler_proxy.nginx.identity import identity_http, identity_lines, identity_locations
from strangler_proxy.override import nginx_token_maps
from strangler_proxy.read_your_writes import any_route_reads_your_writes
from strangler_proxy.routing import route_match, route_rank, shadow_target
from strangler_proxy.shadow import SHADOW_HEADER
from strangler_proxy.spec import (
    CONNECTION_TOKENS,
    HOLD_SAFE_METHODS,
    HOST_PATTERN,
    MIRROR_PRIMARY_HEADER,
    MIRROR_ROUTE_HEADER,
    MIRROR_SHADOW_HEADER,
    OPS_HIDDEN_MESSAGE,
    OPS_PREFIXES,
    SAFE_METHODS,
    Route,
    RouteTable,
    StickySpec,
)

# A method name no route lists: stands for "every other method" when resolving method filters.
_OTHER_METHOD = "_OTHER_"
_DISPATCH_STATUS = 599  # internal only: never sent, error_page turns it into a jump to a named location
_MIRROR_TIMEOUT = 1.0  # seconds
_FALLBACK_STATUSES = "500 502 503 504"  # connect error = 502, timeout = 504
# Mirror locations contain a backslash: both planes refuse such paths with 400, so clients can never reach them.
_MIRROR_PREFIX = "/\\strangler-mirror/"
# Hop-by-hop request headers nginx would pass on. Not listed: Keep-Alive, TE and Upgrade, which nginx's proxy
# module clears itself in every location (its default `proxy_set_header ... ""` list, merged with ours): a line
# each for them would be evaluated on every request for nothing (test_smuggling checks they never arrive).
_HOP_BY_HOP = ("Connection", "Proxy-Connection", "Proxy-Authorization", "Trailer")
_MIRROR_HEADERS = (MIRROR_ROUTE_HEADER, MIRROR_PRIMARY_HEADER, MIRROR_SHADOW_HEADER)  # set on mirror copies only
_INTERNAL_HEADERS = (SHADOW_HEADER, *_MIRROR_HEADERS, READ_AFTER_HEADER)  # never taken from a client
_REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:+/=-]{1,128}$"  # same rule as servicekit.request_id
# On the request line "METHOD TARGET HTTP/x": a target not starting with "/" (absolute-form; nginx itself refuses
# authority-form and "*"), else a backslash, %5C or %2F before the query/fragment (what $request_uri holds there).
# Possessive, so a clean path is scanned once with no backtracking: runs of other characters, `%` not starting
# 2F/5C, and the match needs a `%` or backslash where the scan stopped.
_GUARD_PATTERN = (r"^[^ ]++ (?:(?<strangler_absolute_form>[^/])"
                  r"|[^?# %\x5c]*+(?:%(?!2[fF]|5[cC])[^?# %\x5c]*+)*+[%\x5c])")


DEFAULT_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "[::1]")  # as the mitmproxy plane's default


def _json_body(code: str, message: str) -> str:
    """The project's one API error shape as a single-quoted nginx string (served as application/json)."""
    body = json.dumps({"error": {"code": code, "message": message, "details": {}}})
    assert "'" not in body and "\\" not in body and "$" not in body
    return f"'{body}'"


def _json_return(status: int, code: str, message: str) -> str:
    return f"return {status} {_json_body(code, message)};"


# The limits' refusals as JSON (the mitmproxy plane's limits.head_refusal codes): nginx's own pages are HTML.
# 494 is nginx's internal "request header too large"; it answers 431 here like the mitmproxy plane.
_LIMIT_STATUSES = {
    413: (413, "body_too_large", "The request body exceeds the limit."),
    414: (414, "url_too_long", "The request target exceeds the limit."),
    494: (431, "headers_too_large", "A header line or the headers exceed the limit."),
    429: (429, "too_many_connections", "Too many connections from this address."),
}
_LIMIT_PAGES = tuple(f"error_page {status} = @strangler_{status};" for status in _LIMIT_STATUSES)


def _limit_locations() -> str:
    return "".join(f"location @strangler_{status} {{ {_json_return(*answer)} }}\n"
                   for status, answer in _LIMIT_STATUSES.items()) + (
        # never entered: its `set`s declare the variables the metrics log reads (see the routing server)
        'location @strangler_declared { set $strangler_failed ""; set $strangler_breaker ""; set $strangler_ryw ""; '
        'return 404; }\n')


def _with_limit_pages(body: list[str]) -> list[str]:
    """A block with error_page directives of its own inherits none from the server: repeat the limit pages there."""
    return [*body, *_LIMIT_PAGES] if any(line.startswith("error_page") for line in body) else body


def _limit_directives(settings) -> str:
    """http-level directives for the route file's limits (same values as the mitmproxy plane enforces)."""
    lines = [
        f"client_max_body_size {settings.max_body_bytes};",
        f"large_client_header_buffers {settings.max_header_buffers} {settings.max_header_bytes};",
        f"client_header_timeout {int(settings.client_header_timeout)}s;",
        f"client_body_timeout {int(settings.client_body_timeout)}s;",
        f"keepalive_timeout {int(settings.idle_timeout)}s;",
    ]
    if settings.max_connections_per_client:
        lines += [
            "limit_conn_zone $binary_remote_addr zone=strangler_per_client:10m;",
            f"limit_conn strangler_per_client {settings.max_connections_per_client};",
            "limit_conn_status 429;",
        ]
    return "\n    ".join(lines)


def _worker_user() -> str | None:
    """Workers never run as root: a root master drops them to the invoking user's own account (SUDO_USER) when
    that is not root, else to `nobody`. A non-root master cannot switch user (None: no directive)."""
    if os.geteuid() != 0:
        return None
    invoking = os.environ.get("SUDO_USER")
    if invoking:
        try:
            if pwd.getpwnam(invoking).pw_uid != 0:
                return invoking
        except KeyError:
            pass
    return "nobody"


def _user_directive(user: str) -> str:
    """`user NAME GROUP;` with the account's own primary group (nginx would look up a group named like the user,
    and Debian's nobody is in nogroup). Refuses root and unknown accounts."""
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"nginx worker user {user!r} does not exist") from None
    if account.pw_uid == 0:
        raise ValueError(f"nginx workers must not run as root (user {user!r})")
    return f"user {user} {grp.getgrgid(account.pw_gid).gr_name};"


TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")  # nginx's *_temp_path directives


def temp_path(options: NginxOptions, kind: str) -> Path:
    """Where workers write request bodies and buffered answers (``kind``: client_body, proxy, ...): in the runtime
    dir, or, when a root master runs them as another user, right in the system temp dir, which that user can
    reach (the runtime dir may sit below 0700 directories, like pytest's). The master creates the directory
    and hands it to the workers' user."""
    run = Path(options.runtime_dir).resolve()
    if options.user is None:
        return run / kind
    digest = hashlib.sha256(str(run).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"strangler-nginx-{digest}-{kind}"


@dataclass(frozen=True)
class NginxOptions:
    runtime_dir: Path  # prefix dir of the private instance: pid, logs, temp files
    listen: str = "127.0.0.1:8080"
    override_secret: str | None = None  # tokens are precomputed into a map; None: overrides are ignored
    worker_processes: int | str = 1  # a number or "auto" (one per core)
    keepalive: int = 32  # idle upstream connections kept per worker
    user: str | None = field(default_factory=_worker_user)  # `user` directive; None: not rendered
    hosts: tuple[str, ...] = DEFAULT_HOSTS  # Host names clients may address; "*" accepts any; others get 421
    # Admin listener: serves the digest of the route file this config was rendered from (`strangler-proxy status`,
    # plans confirm a reload landed); never the routes. None: not rendered.
    admin_listen: str | None = None
    metrics_log: bool = True  # one JSON line per request in metrics.log, read by strangler_proxy.nginx.exporter


def _q(value: str) -> str:
    """An nginx double-quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def _var_key(name: str) -> str:
    """nginx variable suffix of a header name: lowercase, '-' -> '_'."""
    return name.lower().replace("-", "_")


def _access_log(mode: str, run: Path) -> str:
    """The `access_log` directive for the route file's settings.access_log."""
    if mode == "off":
        return "access_log off;"
    if mode == "unbuffered":
        return f"access_log {run}/access.log strangler;  # one write() per request"
    # One write() per 64 KiB or per second instead of one per request: lines reach the file up to 1 s late.
    return f"access_log {run}/access.log strangler buffer=64k flush=1s;"


DIGEST_PATH = "/strangler/digest"
METRICS_LOG = "metrics.log"
# One JSON object per request, what strangler_proxy.nginx.exporter counts: the route label and upstream name set by
# the location that answered (empty: nginx refused the request itself), the upstream a fallback left (`failed`)
# and what each upstream try answered (`tried`, e.g. "504, 200"; `connect` "-" when connecting failed); on a
# fallback route, the service whose breaker upstream it went through and what that says of the breaker
# (`breaker`, `breaker_state`: breaker_upstreams); `ryw` "pinned" when the read-your-writes cookie sent a read to the
# monolith (Router.target).
_METRICS_FORMAT = ("'{\"route\":\"$strangler_route\",\"upstream\":\"$strangler_answered\",\"status\":\"$status\","
                   "\"seconds\":\"$request_time\",\"failed\":\"$strangler_failed\",\"tried\":\"$upstream_status\","
                   "\"connect\":\"$upstream_connect_time\",\"breaker\":\"$strangler_breaker\","
                   "\"breaker_state\":\"$strangler_breaker_state\",\"ryw\":\"$strangler_ryw\"}'")


def _metrics_log(options: NginxOptions, run: Path) -> str:
    """log_format and access_log of the metrics log; written per 64 KiB or per second, as the access log."""
    if not options.metrics_log:
        return ""
    return (f"log_format strangler_metrics escape=json {_METRICS_FORMAT};\n"
            f"    access_log {run}/{METRICS_LOG} strangler_metrics buffer=64k flush=1s;")


def _admin_server(options: NginxOptions, digest: str) -> str:
    if options.admin_listen is None:
        return ""
    return (
        "    server {\n"
        f"        listen {options.admin_listen};\n"
        "        default_type text/plain;\n"
        "        access_log off;\n"
        f"        location = {DIGEST_PATH} {{ return 200 \"{digest}\\n\"; }}\n"
        f"        location / {{ {_json_return(404, 'not_found', 'Not found.')} }}\n"
        "    }\n"
    )


def _sample_percent(sample: float) -> str | None:
    """split_clients percentage for a shadow sample rate; None when every request is mirrored."""
    hundredths = round(sample * 10000)
    return None if hundredths >= 10000 else f"{hundredths // 100}.{hundredths % 100:02d}%"


def _ops_guard(exposed: tuple[str, ...]) -> str:
    """404 for ops paths the route file does not expose (routing.OpsHidden); $uri is the normalised path."""
    hidden = [prefix for prefix in OPS_PREFIXES if prefix not in exposed]
    if not hidden:
        return ""
    alternatives = "|".join(hidden)  # plain letters after the slash: nothing to escape
    return (f"        if ($uri ~ \"^(?:{alternatives})(?:/|$)\") {{\n"
            f"            {_json_return(404, 'not_found', OPS_HIDDEN_MESSAGE)}\n        }}\n")


def _hold_map(table: RouteTable) -> str:
    """$strangler_hold: the Retry-After seconds for a write under a held route (strangler_proxy.hold), else ""."""
    held = [r for r in table.routes if r.hold is not None]
    if not held:
        return ""
    safe = "|".join(sorted(HOLD_SAFE_METHODS))
    lines = []
    for route in sorted(held, key=lambda r: -len(r.prefix)):
        path = route.pattern_source[1:] if route.match == "pattern" else re.escape(route.prefix)
        lines.append(f'    "~^(?!(?:{safe}):)[^:]*:{path}{"$" if route.match == "exact" else ""}" '
                     f'{table.settings.hold_retry_after};\n')
    return f"map \"$request_method:$uri\" $strangler_hold {{\n    default \"\";\n{''.join(lines)}}}\n"


def _hold_guard(table: RouteTable) -> str:
    """Writes under a held route answer 503 + Retry-After before any location (both hold modes: nginx cannot
    queue); the server-level add_header applies to this answer (no location was chosen)."""
    if not any(r.hold is not None for r in table.routes):
        return ""
    retry = table.settings.hold_retry_after
    message = f"Writes here are held for a moment (ownership flip); retry in {retry}s."
    return ("        add_header Retry-After $strangler_hold always;  # empty (not sent) unless held\n"
            "        if ($strangler_hold) {\n"
            f"            {_json_return(503, 'write_hold', message)}\n        }}\n")


_BREAKER_SUFFIX = "_breaker"
BREAKER_HEADER = "X-Strangler-Breaker"  # "open" when the breaker sent a request to the monolith without trying
# $strangler_breaker_state, the metrics log's `breaker_state`: nginx shows no half-open (the first request after
# the window simply tries the service again), so the exporter reads closed (service answered) or open (the others).
BREAKER_CLOSED, BREAKER_TRIPPED, BREAKER_OPEN = "closed", "tripped", "open"


def breaker_upstreams(table: RouteTable, services: set[str], keepalive: int) -> str:
    """Per service behind a fallback route: an upstream where the service is marked down after one failed
    attempt (connect error or timeout) for settings.breaker_window seconds, the monolith its `backup`, so a
    dead or hung service costs one timeout per window (the state shared by the workers: `zone`); and maps of
    `$upstream_addr` saying who answered and whether the service was skipped (breaker open). The maps are read
    lazily (add_header, the log), never by `set`: at rewrite time no upstream has been tried yet."""
    monolith = table.upstreams[table.monolith].host_port
    window = table.settings.breaker_window
    out, states, answered = [], [], []
    for name in sorted(services):
        service = table.upstreams[name].host_port
        tried = re.escape(service)
        out.append(
            f"upstream {name}{_BREAKER_SUFFIX} {{\n    zone {name}{_BREAKER_SUFFIX} 64k;\n"
            f"    server {service} max_fails=1 fail_timeout={window}s;\n    server {monolith} backup;\n"
            f"    keepalive {keepalive};\n}}\n"
            f"map $upstream_addr $strangler_breaker_{name} {{\n"
            f"    {_q(monolith)} open;  # the service was not tried\n    default \"\";\n}}\n"
        )
        states.append(f"    \"~^{re.escape(name)} {tried}(?:$| : )\" {BREAKER_CLOSED};\n"
                      f"    \"~^{re.escape(name)} {tried}, \" {BREAKER_TRIPPED};\n"
                      f"    \"~^{re.escape(name)} \" {BREAKER_OPEN};\n")
        answered.append(f"    \"~^{re.escape(name)} {tried}$\" {name};\n"
                        f"    \"~^{re.escape(name)} \" {table.monolith};  # its backup, or its error_page location\n")
    # One map for the metrics log (always there: the log format names it). Read when the line is written, after
    # the tries: the service answered (even a 5xx error_page then replaced: not a failure to max_fails), its
    # try failed (max_fails=1: down for the window), or it was skipped (down) and the backup answered.
    # Each regex map sits behind an exact-key map on $strangler_breaker: a request that went through no breaker
    # (nearly all) gets its answer from one hash lookup, with no regex tried on $upstream_addr.
    out.append("map $strangler_breaker $strangler_breaker_state {\n    \"\" \"\";\n"
               "    default $strangler_breaker_state_tried;\n}\n"
               f"map \"$strangler_breaker $upstream_addr\" $strangler_breaker_state_tried {{\n{''.join(states)}"
               "    default \"\";\n}\n")
    # The upstream that answered, for the log and X-Strangler-Upstream: through a breaker, whoever $upstream_addr
    # says; elsewhere what the location set.
    out.append("map $strangler_breaker $strangler_answered {\n    \"\" $strangler_upstream;\n"
               "    default $strangler_answered_tried;\n}\n"
               f"map \"$strangler_breaker $upstream_addr\" $strangler_answered_tried {{\n{''.join(answered)}"
               "    default $strangler_upstream;\n}\n")
    return "".join(out)


def _real_ip(trusted_proxies: tuple[str, ...]) -> str:
    """The client address from X-Forwarded-For when the peer is a trusted proxy (routing.client_address)."""
    if not trusted_proxies:
        return ""
    return "".join(f"set_real_ip_from {cidr};\n" for cidr in trusted_proxies) + (
        "real_ip_header X-Forwarded-For;\nreal_ip_recursive on;\n")


def _sticky_maps(sticky: StickySpec) -> str:
    """$strangler_key (what split_clients hashes) and $strangler_set_cookie, as routing.sticky_key and
    routing.sticky_cookie_wanted decide them; the fresh id is nginx's random $request_id."""
    cookie = f"$cookie_{sticky.cookie}"
    header = f"$http_{_var_key(sticky.header)}" if sticky.header else '""'
    fresh = "$request_id" if sticky.set_cookie else "$remote_addr"
    maps = (
        "# Sticky key: the cookie, else the header, else the id set as the cookie, else the client address.\n"
        f"map {header} $strangler_key_fallback {{\n    \"\" {fresh};\n    default {header};\n}}\n"
        f"map {cookie} $strangler_key {{\n    \"\" $strangler_key_fallback;\n    default {cookie};\n}}\n"
    )
    if not sticky.set_cookie:
        return maps + "map $request_id $strangler_set_cookie {\n    default \"\";\n}\n"
    # Set only when neither the cookie nor the header came: "<cookie>|<header>" is then exactly "|".
    source = f"{cookie}|{sticky.header and header or ''}"
    return maps + (f"map \"{source}\" $strangler_set_cookie {{\n"
                   f"    \"|\" {_q(sticky.cookie_header('$request_id'))};\n    default \"\";\n}}\n")


def _read_your_writes_map(table: RouteTable) -> str:
    """$strangler_ryw_set: the cookie a write's answer sets when the owner says it emitted events (any value of
    X-Strangler-Written). This plane cannot compare positions: reads with the cookie go to the monolith until it
    expires (settings.read_your_writes.window), a time-bounded guarantee."""
    settings, sticky = table.settings.read_your_writes, table.sticky
    cookie = f"{settings.cookie}=1; Path=/; Max-Age={settings.window}; SameSite={sticky.same_site}; HttpOnly"
    if sticky.secure or sticky.same_site == "None":
        cookie += "; Secure"
    return (f"map $upstream_http_{_var_key(WRITTEN_HEADER)} $strangler_ryw_set {{\n    \"\" \"\";\n"
            f"    default {_q(cookie)};\n}}\n")


def _override_maps(secret: str, table: RouteTable) -> str:
    """Maps verifying scoped, expiring override tokens (see strangler_proxy.override) into $strangler_forced.

    nginx matches map strings ignoring case: tokens are lowercase, so a value with anything but [a-z0-9.] (an
    uppercase letter, a space) is no token. nginx before 1.23 reads only the first of repeated headers and later
    versions join them with ", ": the token is the value up to its first comma, as the mitmproxy plane reads it
    (``override.override_element``), the same on every version. Freshness is a precomputed (expiry hour, current
    hour) pair.
    """
    raw = f"$http_{_var_key(table.override.header)}"
    header = "$strangler_force_first"
    first = (f"map {raw} {header} {{\n    \"~^(?<strangler_ff>[^,]*)\" $strangler_ff;\n    default \"\";\n}}\n")
    tokens, pairs = nginx_token_maps(secret, table.upstreams)
    token_lines = "".join(f"    {token} \"{'|'.join(scope)}\";\n" for token, scope in tokens.items())
    pair_lines = "".join(f"    \"{expiry}|{hour}\" 1;\n" for expiry, hour in pairs)
    safe = "|".join(sorted(SAFE_METHODS))
    return (
        first +
        f"map {header} $strangler_token {{\n    default \"\";\n{token_lines}}}\n"
        f"map {header} $strangler_token_exact {{\n    \"~[^a-z0-9.]\" 0;\n    default 1;\n}}\n"
        "map $time_iso8601 $strangler_hour {\n"
        "    \"~^(?<strangler_th>[0-9-]{10}T[0-9]{2}):[0-9:]{5}"
        "(?<strangler_tz>[+-][0-9]{2}):(?<strangler_tzm>[0-9]{2})$\""
        " \"$strangler_th$strangler_tz$strangler_tzm\";\n    default \"\";\n}\n"
        "map $strangler_token $strangler_token_expiry {\n"
        "    \"~[|](?<strangler_te>[0-9]{10})$\" $strangler_te;\n    default \"\";\n}\n"
        f"map \"$strangler_token_expiry|$strangler_hour\" $strangler_token_fresh {{\n    default 0;\n{pair_lines}}}\n"
        "map \"$strangler_token_exact$strangler_token_fresh|$strangler_token|$request_method\" $strangler_forced {\n"
        "    \"~^11[|](?<strangler_tu>[a-z][a-z0-9_]*)[|]any[|]\" $strangler_tu;\n"
        f"    \"~^11[|](?<strangler_tu>[a-z][a-z0-9_]*)[|]safe[|][0-9]{{10}}[|](?:{safe})$\" $strangler_tu;\n"
        "    default \"\";\n}\n"
    )


class _Renderer:
    def __init__(self, table: RouteTable, options: NginxOptions):
        self.table = table
        self.options = options
        self.http: dict[str, str] = {}  # http-level blocks (maps, split_clients) by the variable they define
        self.breakers: set[str] = set()  # services reached through their breaker upstream (fallback routes)
        self.named: dict[str, list[str]] = {}  # named/internal locations, by name, rendered once
        self.route_ids = {route: f"r{i}" for i, route in enumerate(table.routes)}
        self.canary_sides: dict[str, str] = {}  # canary safe-method pick variable -> its more likely location
        # Behind a Host allowlist every request here has a Host header (none: the 421 server), so it is sent as is;
        # accepting any host, an HTTP/1.0 request without one gets the server name instead.
        self.host_expr = "$strangler_host" if "*" in options.hosts else "$http_host"
        self.read_your_writes = any_route_reads_your_writes(table)
        self.pinned_vars: dict[tuple[Route, str], str] = {}  # (route, its usual target) -> read-your-writes pick

    # -- per-route variables ------------------------------------------------------------------------------
    def primary_expr(self, route: Route) -> str:
        """Upstream name (literal) or the nginx variable holding the canary pick."""
        if route.mode == "service":
            return route.service
        if route.mode != "canary" or route.weight <= 0:
            return self.table.monolith
        if route.weight >= 100:
            return route.service
        rid = self.route_ids[route]
        self.http[f"pick_{rid}"] = (
            f"split_clients \"$strangler_key\" $strangler_canary_{rid} {{\n"
            f"    {route.weight}% 1;\n    * 0;\n}}\n"
            f"map $strangler_canary_{rid} $strangler_pick_{rid} {{\n"
            f"    1 {route.service};\n    default {self.table.monolith};\n}}\n"
        )
        return f"$strangler_pick_{rid}"

    def possible_primaries(self, route: Route) -> list[str]:
        expr = self.primary_expr(route)
        return [self.table.monolith, route.service] if expr.startswith("$") else [expr]

    def wants_mirror(self, route: Route, method: str) -> bool:
        if route.shadow is not None and round(route.shadow.sample * 10000) <= 0:  # below split_clients' 0.01%
            return False
        return any(shadow_target(self.table, route, primary=p, method=method) for p in self.possible_primaries(route))

    def wants_fallback(self, route: Route, method: str) -> bool:
        return route.fallback and method in SAFE_METHODS and route.service is not None and route.mode in (
            "service", "canary") and self.primary_expr(route) != self.table.monolith

    # -- named locations ----------------------------------------------------------------------------------
    def proxy_lines(self, upstream_expr: str, timeout: float, *, request_uri: bool = False,
                    identity_for: str | None = None, fallback: bool = False) -> list[str]:
        """`identity_for`: the upstream (name or variable) picked, when it may get a signed identity
        (strangler_proxy.nginx.identity); otherwise the client's identity header is only dropped."""
        target = f"http://{upstream_expr}$request_uri" if request_uri else f"http://{upstream_expr}"
        lines = [
            f"proxy_pass {target};",
            f"proxy_connect_timeout {_ms(min(timeout, 75))};",
            f"proxy_send_timeout {_ms(timeout)};",
            f"proxy_read_timeout {_ms(timeout)};",
            f"proxy_set_header Host {self.host_expr};",
            "proxy_set_header X-Request-ID $strangler_request_id;",
            "proxy_set_header traceparent $strangler_traceparent;",
            # Clients are untrusted: their forwarding headers are replaced, not appended to (as on the mitmproxy
            # plane), and only the proxy may mark a request as a shadow or mirror copy.
            "proxy_set_header X-Forwarded-For $remote_addr;",
            f"proxy_set_header X-Forwarded-Host {self.host_expr};",
            "proxy_set_header X-Forwarded-Proto $scheme;",
            f"proxy_set_header {self.table.override.header} \"\";",
        ]
        lines += [f"proxy_set_header {name} \"\";" for name in (*_HOP_BY_HOP, *_INTERNAL_HEADERS)
                  if not (request_uri and name in _MIRROR_HEADERS)]
        lines += identity_lines(self.table, identity_for, fallback=fallback)
        # Exactly one X-Request-ID on every answer, even nginx's own 502/504: the id the upstream was sent.
        lines += ["proxy_hide_header X-Request-ID;", "add_header X-Request-ID $strangler_request_id always;"]
        # The sticky cookie for a client that has none (empty: add_header sends nothing); add_header is not
        # inherited by a location that has its own, hence here with the others.
        lines.append("add_header Set-Cookie $strangler_set_cookie always;")
        if self.read_your_writes:  # the owner's positions become the time-bounded cookie (_read_your_writes_map)
            lines += [f"proxy_hide_header {WRITTEN_HEADER};", f"proxy_hide_header {READ_AFTER_HEADER};",
                      "add_header Set-Cookie $strangler_ryw_set always;"]
        return lines

    def route_headers(self, label: str, upstream_expr: str, *, answered_expr: str | None = None) -> list[str]:
        """The metrics log's route and upstream variables, and the X-Strangler-* headers when the file wants them;
        `answered_expr` names who answered when only the tries tell (a breaker upstream: breaker_upstreams)."""
        labels = [f"set $strangler_route {_q(label)};", f"set $strangler_upstream {upstream_expr};"]
        if not self.table.settings.route_headers:
            return labels
        return [*labels,
            f"add_header X-Strangler-Route {_q(label)} always;",
            f"add_header X-Strangler-Upstream {answered_expr or upstream_expr} always;",
        ]

    def add_named(self, name: str, body: list[str]) -> str:
        if name not in self.named:
            self.named[name] = body
        return name

    def location_default(self) -> str:
        return self.add_named("@default", [
            *self.proxy_lines(self.table.monolith, 30.0), *self.route_headers("default", self.table.monolith),
        ])

    def location_forced(self, route: Route | None) -> str:
        rid = self.route_ids[route] if route else "default"
        label = route.label if route else "default"
        timeout = route.timeout if route else 30.0
        return self.add_named(f"@forced_{rid}", [
            *self.proxy_lines("$strangler_forced", timeout, identity_for="$strangler_forced"),
            *self.route_headers(label, "$strangler_forced"),
        ])

    def location_mirror(self, route: Route) -> str:
        rid = self.route_ids[route]
        name = f"{_MIRROR_PREFIX}{rid}"
        primary = self.primary_expr(route)
        shadows = {p: shadow_target(self.table, route, primary=p, method="GET") for p in self.possible_primaries(route)}
        body = []
        if route.shadow is not None and (percent := _sample_percent(route.shadow.sample)) is not None:
            self.http[f"sample_{rid}"] = (
                # keyed on the request id: a request (and its retries) is sampled the same way every time
                f"split_clients \"$strangler_request_id\" $strangler_sample_{rid} {{\n    {percent} 1;\n    * 0;\n}}\n"
            )
            body.append(f"if ($strangler_sample_{rid} = 0) {{ return 204; }}")
        if primary.startswith("$"):
            entries = "".join(f"    {p} {_q(s or '')};\n" for p, s in shadows.items())
            self.http[f"shadow_{rid}"] = f"map {primary} $strangler_shadow_{rid} {{\n{entries}    default \"\";\n}}\n"
            shadow_expr = f"$strangler_shadow_{rid}"
            body.append(f"if ({shadow_expr} = \"\") {{ return 204; }}")
        else:
            shadow_expr = shadows[primary]
        # The diff endpoint answers 202 at once and compares later; nginx holds the client connection's next
        # request until the mirror is answered, so a hung diff endpoint may only cost this much.
        timeout = _MIRROR_TIMEOUT
        body += [
            "internal;",
            *self.proxy_lines("strangler_diff", timeout, request_uri=True),
            f"proxy_set_header {MIRROR_ROUTE_HEADER} {_q(route.label)};",
            f"proxy_set_header {MIRROR_PRIMARY_HEADER} {primary};",
            f"proxy_set_header {MIRROR_SHADOW_HEADER} {shadow_expr};",
        ]
        return self.add_named(name, body)

    def location_route(self, route: Route, *, mirror: bool, fallback: bool) -> str:
        rid = self.route_ids[route]
        name = f"@{rid}" + ("_mirror" if mirror else "") + ("_fallback" if fallback else "")
        if name in self.named:
            return name
        primary = self.primary_expr(route)
        if fallback:
            # Only reached when the service was picked: through its breaker upstream (breaker_upstreams).
            assert route.service is not None
            self.breakers.add(route.service)
            body = [f"set $strangler_breaker {route.service};  # for the metrics log's breaker_state",
                    *self.proxy_lines(f"{route.service}{_BREAKER_SUFFIX}", route.timeout, identity_for=route.service,
                                      fallback=True),
                    # $strangler_upstream: the service, what $strangler_failed says when its 5xx falls back.
                    *self.route_headers(route.label, route.service, answered_expr="$strangler_answered"),
                    f"add_header {BREAKER_HEADER} $strangler_breaker_{route.service} always;"]
        else:
            body = [*self.proxy_lines(primary, route.timeout, identity_for=primary),
                    *self.route_headers(route.label, primary)]
        if mirror:
            body.append(f"mirror {_q(self.location_mirror(route))};")
        if fallback:
            monolith_location = self.add_named(f"@{rid}_monolith", [
                # set variables survive the jump to a named location: the upstream that failed, for the metrics
                "set $strangler_failed $strangler_upstream;",
                *self.proxy_lines(self.table.monolith, route.timeout),
                *self.route_headers(route.label, self.table.monolith),
            ])
            body += [
                "recursive_error_pages on;  # we got here through error_page already",
                "proxy_intercept_errors on;",
                f"error_page {_FALLBACK_STATUSES} = {monolith_location};",
            ]
        return self.add_named(name, body)

    def target(self, route: Route | None, method: str) -> str:
        """Named location (or the variable naming it) serving `method` on a path whose best route is `route`;
        a read-your-writes route's reads go to the monolith while the client has the write cookie."""
        usual = self.usual_target(route, method)
        if route is None or method not in SAFE_METHODS or not route.reads_your_writes:
            return usual
        if self.primary_expr(route) == self.table.monolith:
            return usual
        var = self.pinned_vars.get((route, usual))
        if var is None:
            rid = self.route_ids[route]
            var = self.pinned_vars[(route, usual)] = f"$strangler_ryw_{rid}_{len(self.pinned_vars)}"
            pinned = self.add_named(f"@{rid}_ryw", [
                "set $strangler_ryw pinned;  # the metrics log's: strangler_proxy_read_your_writes_total",
                *self.proxy_lines(self.table.monolith, route.timeout),
                *self.route_headers(route.label, self.table.monolith),
            ])
            cookie = f"$cookie_{self.table.settings.read_your_writes.cookie}"
            self.http[var[1:]] = f"map {cookie} {var} {{\n    \"\" {usual};\n    default {pinned};\n}}\n"
            self.canary_sides[var] = self.likely(usual)
        return var

    def usual_target(self, route: Route | None, method: str) -> str:
        if route is None:
            return self.location_default()
        mirror = self.wants_mirror(route, method)
        if not self.wants_fallback(route, method):
            return self.location_route(route, mirror=mirror, fallback=False)
        with_fallback = self.location_route(route, mirror=mirror, fallback=True)
        primary = self.primary_expr(route)
        if not primary.startswith("$"):
            return with_fallback
        # Canary: fall back only when the service was picked (a failing monolith is not retried on itself).
        rid = self.route_ids[route]
        without = self.location_route(route, mirror=mirror, fallback=False)
        var = f"$strangler_safe_{rid}"
        self.http[f"safe_{rid}"] = (
            f"map {primary} {var} {{\n    {route.service} {with_fallback};\n    default {without};\n}}\n"
        )
        self.canary_sides[var] = with_fallback if route.weight >= 50 else without
        return var

    # -- locations ----------------------------------------------------------------------------------------
    def method_map(self, name: str, targets: dict[str, str], other: str) -> str:
        """A hash map from $request_method to a target; just the target when every method gets the same one."""
        differing = {method: target for method, target in targets.items() if target != other}
        if not differing:
            return other
        entries = "".join(f"    {method} {target};\n" for method, target in differing.items())
        self.http[name] = f"map $request_method $strangler_{name} {{\n{entries}    default {other};\n}}\n"
        return f"$strangler_{name}"

    def likely(self, target: str) -> str:
        """The named location a target most often is: a canary's safe-method pick follows the larger side."""
        return self.canary_sides.get(target, target)

    def locations(self) -> list[str]:
        routes = self.table.routes
        overridable = bool(self.options.override_secret)  # without a secret $strangler_forced is always ""
        static = [r for r in routes if r.match != "pattern"]
        patterns = sorted((r for r in routes if r.match == "pattern"), key=route_rank, reverse=True)
        # Safe methods are always resolved one by one: only they get the fallback (and, by default, the mirror).
        listed = sorted({m for r in routes if r.methods for m in r.methods} | SAFE_METHODS)
        other_re = "(?!(?:" + "|".join(listed) + r")\|)[^|]+"  # any method not listed
        keys = {(r.pattern_lead, "exact" if r.match == "exact" else "prefix") for r in routes} | {("/", "prefix")}
        # A prefix location ending in "/" that proxies answers its name without the slash with a 301 (nginx's
        # auto_redirect); an exact location for that name routes it as decide() does instead.
        keys |= {(prefix[:-1], "exact") for prefix, match in keys if match == "prefix" and len(prefix) > 1
                 and prefix.endswith("/")}
        out = []
        for index, (prefix, match) in enumerate(sorted(keys)):
            exact = match == "exact"
            # Static routes were resolved now (see the module docstring) into exact-key maps on the method (and
            # the override); pattern routes are regexes on "forced|method|$uri", tried first, best first, wherever
            # they outrank that static route, and only in the locations where they can match.
            pattern_entries: list[tuple[str, str]] = []
            plain: dict[str, str] = {}
            forced: dict[str, str] = {}
            for method in [*listed, _OTHER_METHOD]:
                method_re = other_re if method == _OTHER_METHOD else method
                best = route_match(static, path=prefix, method=method, exact_allowed=exact)
                for route in patterns:
                    if (prefix.startswith(route.pattern_lead) and route.accepts_method(method)
                            and (best is None or route_rank(route) > route_rank(best))):
                        tail = rf"\|{method_re}\|{route.pattern_source[1:]}"
                        if overridable:
                            pattern_entries.append((r"~^[^|]+" + tail, self.location_forced(route)))
                        pattern_entries.append((r"~^" + tail, self.target(route, method)))
                plain[method] = self.target(best, method)
                if overridable:
                    forced[method] = self.location_forced(best)
            dispatch = self.method_map(f"plain_l{index}", plain, plain.pop(_OTHER_METHOD))
            if overridable:
                by_override = self.method_map(f"forced_l{index}", forced, forced.pop(_OTHER_METHOD))
                self.http[f"static_l{index}"] = (
                    f"map $strangler_forced $strangler_static_l{index} {{\n"
                    f"    \"\" {dispatch};\n    default {by_override};\n}}\n"
                )
                dispatch = f"$strangler_static_l{index}"
            if pattern_entries:
                lines = "".join(f"    {_q(key)} {target};\n" for key, target in pattern_entries)
                self.http[f"to_l{index}"] = (
                    f"map \"$strangler_forced|$request_method|$uri\" $strangler_to_l{index} {{\n"
                    f"{lines}    default {dispatch};\n}}\n"
                )
                dispatch = f"$strangler_to_l{index}"
            # The location serves its most likely target (a GET's) itself; anything else jumps to its named
            # location (`return 599` + `error_page 599 = $var`), which costs an internal redirect per request.
            inline = self.likely(plain["GET"])
            body = [line for line in self.named[inline] if not line.startswith("recursive_error_pages")]
            jump = []
            if dispatch != inline:
                jump = [
                    f"error_page {_DISPATCH_STATUS} = {dispatch};",
                    f"if ({dispatch} != {_q(inline)}) {{ return {_DISPATCH_STATUS}; }}",
                ]
            modifier = "=" if exact else "^~"
            out.append(
                f"location {modifier} {_q(prefix)} {{\n"
                "    recursive_error_pages on;  # else the fallback's error_page after a jump is ignored\n"
                + "".join(f"    {line}\n" for line in _with_limit_pages([*jump, *body]))
                + "}\n"
            )
        return out

    # -- whole file ---------------------------------------------------------------------------------------
    def render(self) -> str:
        table, opts = self.table, self.options
        run = Path(opts.runtime_dir).resolve()
        sticky = table.sticky
        secret = opts.override_secret
        overrides = _override_maps(secret, table) if secret else (
            f"map $http_{_var_key(table.override.header)} $strangler_forced {{\n    default \"\";\n}}\n")
        upstreams = "".join(
            f"upstream {u.name} {{\n    server {u.host_port};\n    keepalive {opts.keepalive};\n}}\n"
            for u in table.upstreams.values()
        )
        locations = self.locations()  # fills self.http, self.named and self.breakers
        unavailable = " ".join([
            "add_header X-Request-ID $strangler_request_id always;", "add_header Retry-After 5 always;",
            _json_return(503, "identity_unavailable", "Cannot check who you are right now; please try again."),
        ])
        for name, body in identity_locations(table, host_expr=self.host_expr, unavailable=unavailable,
                                             timeout_ms=_ms(table.settings.identity.timeout)).items():
            self.add_named(name, body)
        upstreams += breaker_upstreams(table, self.breakers, opts.keepalive)
        named = []
        for name, body in self.named.items():
            head = f"location = {_q(name)}" if not name.startswith("@") else f"location {name}"
            named.append(head + " {\n" + "".join(f"    {line}\n" for line in _with_limit_pages(body)) + "}\n")
        indent = lambda block: "".join(f"    {line}\n" if line else "\n" for line in block.splitlines())  # noqa: E731
        server_body = "".join(indent(b) for b in [*locations, *named])
        user_line = f"{_user_directive(opts.user)}\n" if opts.user else ""
        absolute_form = _json_return(400, "absolute_form_refused", "Send a path, not an absolute URI.")
        limit_pages = "".join(f"{line}\n" for line in _LIMIT_PAGES) + _limit_locations()
        if "*" in opts.hosts:
            host_guard, routing_default, server_names = "", " default_server", "_"
        else:  # only configured names reach the routing server; the rest (and no Host at all) get 421
            server_names = " ".join(_q(h.lower()) for h in opts.hosts)
            routing_default = ""
            host_guard = (
                "    server {\n"
                f"        listen {opts.listen} default_server;\n"
                "        server_name _;\n"
                "        default_type application/json;\n"
                "        add_header X-Request-ID $strangler_request_id always;\n"
                f"        if ($request ~ \"^[^ ]+ [^/]\") {{ {absolute_form} }}\n"
                f"        {_json_return(421, 'unknown_host', 'This proxy does not serve that host.')}\n"
                + indent(indent(limit_pages)) +
                "    }\n"
            )
        url_limit = (
            f"        if ($request_uri ~ \"^.{{{table.settings.max_url_bytes + 1}}}\") {{\n"
            f"            {_json_return(414, 'url_too_long', 'The request target exceeds the limit.')}\n"
            "        }\n"
        )
        host_syntax = "" if "*" in opts.hosts else (
            # server_name matching drops a trailing dot and what follows a second port: check the header as sent.
            f"        if ($http_host !~* \"^{HOST_PATTERN}$\") {{\n"
            f"            {_json_return(421, 'unknown_host', 'This proxy does not serve that host.')}\n"
            "        }\n"
        )
        return f"""\
# Generated by strangler-proxy from {table.source}
# (sha256 {table.digest[:16]}). Do not edit: edit the route file and run `strangler-proxy nginx-reload`.
{user_line}worker_processes {opts.worker_processes};
pcre_jit on;  # every request runs a few regexes (path guards, per-location maps): compiled, not interpreted
pid {run}/nginx.pid;
error_log {run}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    log_format strangler '$remote_addr "$request" $status $body_bytes_sent $request_time '
                         'route=$sent_http_x_strangler_route upstream=$upstream_addr id=$strangler_request_id '
                         'breaker=$sent_http_x_strangler_breaker';  # "open": the service was skipped
    {_access_log(table.settings.access_log, run)}
    {_metrics_log(opts, run)}
    client_body_temp_path {temp_path(opts, 'client_body')};
    proxy_temp_path {temp_path(opts, 'proxy')};
    fastcgi_temp_path {temp_path(opts, 'fastcgi')};
    uwsgi_temp_path {temp_path(opts, 'uwsgi')};
    scgi_temp_path {temp_path(opts, 'scgi')};
    {_limit_directives(table.settings)}
    server_tokens off;
    merge_slashes on;  # normalize_path() merges slashes too
    map_hash_bucket_size 256;  # override tokens are long keys
    map_hash_max_size 8192;  # 2 x 24 tokens per upstream, and the expiry/hour pairs
    proxy_http_version 1.1;  # with Connection "" below: keepalive to upstreams
    proxy_buffering on;
{indent(_real_ip(table.settings.trusted_proxies))}
{indent(upstreams)}    upstream strangler_diff {{
        server {table.settings.diff_endpoint};
        keepalive 8;
    }}

    map $http_x_request_id $strangler_request_id {{
        "" $request_id;  # no header (nearly always): a hash lookup, no regex tried
        "~{_REQUEST_ID_PATTERN}" $http_x_request_id;
        default $request_id;
    }}
    # W3C trace context (servicekit.trace_context's rule): a valid client traceparent goes on as it is, anything
    # else starts a trace from $request_id (32 random hex digits; its first 16 are the span id). Debian's nginx
    # has no OpenTelemetry module, so this plane records no span of its own.
    map $request_id $strangler_trace_span {{
        "~^(?<span>[0-9a-f]{{16}})" $span;
    }}
    map $http_traceparent $strangler_traceparent {{
        "" "00-$request_id-$strangler_trace_span-01";  # no header: a hash lookup, no regex tried
        "~^00-0{{32}}-" "00-$request_id-$strangler_trace_span-01";
        "~^00-[0-9a-f]{{32}}-0{{16}}-" "00-$request_id-$strangler_trace_span-01";
        "~^00-[0-9a-f]{{32}}-[0-9a-f]{{16}}-[0-9a-f]{{2}}$" $http_traceparent;
        default "00-$request_id-$strangler_trace_span-01";
    }}
    map $http_host $strangler_host {{
        "" $host;
        default $http_host;
    }}
{indent(_sticky_maps(sticky))}
{indent(_read_your_writes_map(table) if self.read_your_writes else "")}
    # A Connection header naming anything but hop-by-hop headers is refused, as by the mitmproxy plane.
    map $http_connection $strangler_connection_refused {{
        "" 0;  # nginx tries no regex on an empty value
        "~*^[ \t,]*(?:(?:{"|".join(sorted(CONNECTION_TOKENS))})[ \t]*(?:,[ \t,]*|$))*$" 0;
        default 1;
    }}
    map $strangler_absolute_form $strangler_refusal {{
        "" {_json_body("path_rejected", "Encoded slash or backslash in the path.")};
        default {_json_body("absolute_form_refused", "Send a path, not an absolute URI.")};
    }}
    # Signed overrides: only precomputed tokens name an upstream; anything else is ignored (and never forwarded).
{indent(overrides)}
{indent(_hold_map(table))}{indent("".join(self.http.values()))}
{indent(identity_http(table, temp_path(opts, 'identity_cache')))}
{host_guard}{_admin_server(opts, table.digest)}    server {{
        listen {opts.listen}{routing_default};
        server_name {server_names};
        default_type application/json;  # for the answers nginx gives itself below
        add_header X-Request-ID $strangler_request_id always;
        # $strangler_failed and $strangler_breaker (the metrics log's) are filled by fallback locations only and
        # declared in @strangler_declared: a server-level `set` would also run in the identity lookup's subrequest
        # (auth request), which shares the request's variables, and blank what the location had set.
        uninitialized_variable_warn off;

        # Refuse what normalize_path() refuses: absolute-form/authority-form/asterisk targets, backslash and
        # encoded slash/backslash in the path (nginx would decode %2F into a separator). One regex on the
        # request line for both; the named capture tells them apart for the error body.
        if ($request ~ "{_GUARD_PATTERN}") {{
            return 400 $strangler_refusal;
        }}
{url_limit}{host_syntax}{_ops_guard(table.settings.exposed_ops)}        if ($strangler_connection_refused) {{
            {_json_return(400, "connection_header_refused", "The Connection header may only name hop-by-hop headers.")}
        }}
{_hold_guard(table)}{indent(indent(limit_pages))}
{indent(server_body)}    }}
}}
"""


def render_nginx(table: RouteTable, options: NginxOptions) -> str:
    """The complete nginx.conf text for the table."""
    return _Renderer(table, options).render()

