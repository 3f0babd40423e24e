"""Identity at the edge, nginx plane: ``auth_request`` to the monolith's identity endpoint, its answer forwarded.

A location that may send a request to an upstream in ``settings.identity.upstreams`` sets
``$strangler_identity_for`` to the upstream it picked (a name, or the canary/override variable) and runs an
``auth_request`` subrequest to an internal location (its path has a backslash: both planes refuse such paths from
clients). There, a request for another upstream or without credentials (Authorization, the credential cookies)
is allowed at once (204: no identity, the service sees anonymous); anything else asks the monolith's endpoint
``?audience=<upstream>`` with the client's headers, and ``auth_request_set`` copies the signed identity it
answers into the header sent to the service. With ``identity.cache_ttl`` > 0 the answers are kept in a
``proxy_cache`` (keyed by the upstream and the credentials; nginx writes the key into each cache file, 0600
and owned by the workers' user, in the instance's private temp dir).

Fail closed: when the endpoint does not answer 2xx, ``auth_request`` ends the request with 500, which this
location turns into the 503 ``identity_unavailable`` of the mitmproxy plane; on a fallback route's location
(safe methods) the route's own ``error_page 500`` sends it to the monolith instead, which checks the
credentials itself (the mitmproxy plane does the same). The identity header a client sent is never passed on:
every proxying location sets it (empty unless resolved here).
"""

from __future__ import annotations

from pathlib import Path

from strangler_proxy.spec import RouteTable

IDENTITY_LOCATION = "/\\strangler-identity"  # internal only: the backslash is refused in clients' paths
IDENTITY_UNAVAILABLE = "@strangler_identity_unavailable"


def identity_enabled(table: RouteTable) -> bool:
    return bool(table.settings.identity.upstreams)


def identity_may_need(table: RouteTable, upstream_expr: str) -> bool:
    """Whether a location proxying to ``upstream_expr`` (a name or a variable) may need an identity."""
    if not identity_enabled(table):
        return False
    return upstream_expr.startswith("$") or table.settings.identity.wanted(upstream_expr)


def identity_lines(table: RouteTable, upstream_expr: str | None, *, fallback: bool) -> list[str]:
    """The location's identity directives: strip the client's header, or resolve and forward the signed one."""
    header = table.settings.identity.header
    if upstream_expr is None or not identity_may_need(table, upstream_expr):
        return [f"proxy_set_header {header} \"\";"]
    lines = [
        f"set $strangler_identity_for {upstream_expr};",
        f"auth_request \"{IDENTITY_LOCATION.replace(chr(92), chr(92) * 2)}\";",
        f"auth_request_set $strangler_identity $upstream_http_{header.lower().replace('-', '_')};",
        f"proxy_set_header {header} $strangler_identity;",
    ]
    if not fallback:  # a fallback route's error_page 500 goes to the monolith instead
        lines.append(f"error_page 500 = {IDENTITY_UNAVAILABLE};")
    return lines


def identity_http(table: RouteTable, cache_dir: Path) -> str:
    """http-level maps (and the cache, in ``cache_dir``: render.temp_path's) of the identity lookup; empty when
    no upstream gets identity."""
    if not identity_enabled(table):
        return ""
    settings = table.settings.identity
    names = "".join(f"    {name} 1;\n" for name in settings.upstreams)
    credentials = "$http_authorization" + "".join(f"$cookie_{cookie}" for cookie in settings.cookies)
    out = (
        f"map $strangler_identity_for $strangler_identity_upstream {{\n{names}    default 0;\n}}\n"
        f"map \"$strangler_identity_upstream|{credentials}\" $strangler_identity_want {{\n"
        "    \"~^1[|].\" 1;\n    default 0;\n}\n"
    )
    if settings.cache_ttl > 0:
        # ~8000 keys per MiB of zone; inactive entries go after the TTL
        zone_mib = max(1, -(-settings.cache_size // 8000))
        out += (f"proxy_cache_path {cache_dir} levels=1:2 keys_zone=strangler_identity:{zone_mib}m "
                f"max_size={max(8, settings.cache_size // 100)}m inactive={max(1, round(settings.cache_ttl))}s "
                "use_temp_path=off;\n")
    return out


def identity_locations(table: RouteTable, *, host_expr: str, timeout_ms: str,
                       unavailable: str) -> dict[str, list[str]]:
    """The internal subrequest location and the 503 location, by name."""
    if not identity_enabled(table):
        return {}
    settings = table.settings.identity
    credentials = "$http_authorization" + "".join(f"$cookie_{cookie}" for cookie in settings.cookies)
    body = [
        "internal;",
        "if ($strangler_identity_want = 0) { return 204; }  # another upstream, or no credentials: anonymous",
        f"proxy_pass http://{table.monolith}{settings.endpoint}?audience=$strangler_identity_for;",
        "proxy_method GET;",
        "proxy_pass_request_body off;",
        "proxy_set_header Content-Length \"\";",
        f"proxy_set_header Host {host_expr};",
        "proxy_set_header X-Request-ID $strangler_request_id;",
        "proxy_set_header traceparent $strangler_traceparent;",
        "proxy_set_header Connection \"\";",
        f"proxy_set_header {settings.header} \"\";",
        f"proxy_connect_timeout {timeout_ms};",
        f"proxy_send_timeout {timeout_ms};",
        f"proxy_read_timeout {timeout_ms};",
    ]
    if settings.cache_ttl > 0:
        body += [
            "proxy_cache strangler_identity;",
            f"proxy_cache_key \"$strangler_identity_for|{credentials}\";",
            f"proxy_cache_valid 200 {max(1, round(settings.cache_ttl))}s;",
            "proxy_cache_methods GET HEAD POST;",  # a subrequest has its parent's method; the endpoint gets GET
            # the endpoint answers `private, no-store` (for other caches); this one is keyed by the credentials
            "proxy_ignore_headers Cache-Control Expires Set-Cookie Vary X-Accel-Expires;",
            "proxy_cache_lock on;",  # one lookup for concurrent requests with the same credentials
        ]
    # The variable the maps read is set by the locations that proxy to a service; this (harmless) set declares it
    # for a table none of whose routes does yet, which nginx would otherwise refuse as an unknown variable.
    # Not at server level: auth_request's subrequest shares the variables and would run it again, blanking them.
    return {IDENTITY_LOCATION: body, IDENTITY_UNAVAILABLE: ['set $strangler_identity_for "";', unavailable]}
