"""Parse the route file (YAML) once into a RouteTable, with errors that name file, line and field."""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import yaml

from strangler_proxy.spec import (
    ACCESS_LOG_MODES,
    HOLD_MODES,
    MATCH_KINDS,
    MODES,
    OPS_PREFIXES,
    SAME_SITE_VALUES,
    DiffRules,
    IdentitySettings,
    NoiseSettings,
    OverrideSpec,
    ProxySettings,
    ReadYourWritesSettings,
    Route,
    RouteTable,
    ShadowSpec,
    StickySpec,
    Upstream,
)

DEFAULT_ROUTE_FILE = Path(__file__).resolve().parent / "routes.yaml"
ROUTES_ENV = "STRANGLER_ROUTES"

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # used as nginx upstream / variable names
_TOKEN = re.compile(r"^[A-Z]+$")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_COOKIE = re.compile(r"^[A-Za-z0-9_]{1,64}$")  # nginx's $cookie_<name> needs a variable-safe name
# Route prefixes are canonical paths: printable ASCII without %, backslash, quotes, spaces, `//` or dot segments,
# so that the canonical path nginx matches and normalize_path() agree byte for byte.
# No `$` either: nginx would read it as a variable where the prefix is rendered into a header value.
_PREFIX = re.compile(r"^/[A-Za-z0-9._~!&'()*+,;=:@/-]*$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}$")
# host:port exactly as rendered into nginx `server` lines: a name, IPv4 or bracketed IPv6, nothing else.
_NETLOC = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}$")


class RouteFileError(ValueError):
    """A route file problem; str() is `file:line: field: message`."""

    def __init__(self, path: str, line: int, field: str, message: str):
        self.path, self.line, self.field, self.message = path, line, field, message
        super().__init__(f"{path}:{line}: {field}: {message}")


def route_file_path(path: str | os.PathLike | None = None) -> Path:
    """The route file to use: the argument, else $STRANGLER_ROUTES, else strangler_proxy/routes.yaml."""
    return Path(path or os.environ.get(ROUTES_ENV) or DEFAULT_ROUTE_FILE)


def load_route_file(path: str | os.PathLike | None = None) -> RouteTable:
    file_path = route_file_path(path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RouteFileError(str(file_path), 0, "file", exc.strerror or str(exc)) from exc
    return parse_route_text(text, source=str(file_path))


class _Reader:
    """Walks yaml.compose() nodes so every value keeps its line number."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, node: yaml.Node | None, field: str, message: str) -> RouteFileError:
        line = node.start_mark.line + 1 if node is not None else 1
        return RouteFileError(self.source, line, field, message)

    def mapping(self, node: yaml.Node, field: str, allowed: set[str]) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, field, "must be a mapping")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            sub = f"{field}.{key}" if field else str(key)
            if not isinstance(key, str):
                raise self.fail(key_node, field or "file", "keys must be strings")
            if key in out:
                raise self.fail(key_node, sub, "duplicate key")
            if allowed and key not in allowed:
                raise self.fail(key_node, sub, f"unknown key (allowed: {', '.join(sorted(allowed))})")
            out[key] = (key_node, value_node)
        return out

    def scalar(self, node: yaml.Node, field: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, field, "must be a single value")
        return yaml.safe_load(yaml.serialize(node))

    def string(self, node: yaml.Node, field: str, pattern: re.Pattern | None = None, hint: str = "") -> str:
        value = self.scalar(node, field)
        if not isinstance(value, str) or not value:
            raise self.fail(node, field, "must be a non-empty string")
        if pattern is not None and not pattern.match(value):
            raise self.fail(node, field, f"invalid value {value!r}" + (f" ({hint})" if hint else ""))
        return value

    def boolean(self, node: yaml.Node, field: str) -> bool:
        value = self.scalar(node, field)
        if not isinstance(value, bool):
            raise self.fail(node, field, "must be true or false")
        return value

    def number(self, node: yaml.Node, field: str, low: float, high: float, *, integer: bool = False) -> float:
        value = self.scalar(node, field)
        bounds = f"{int(low)}..{int(high)}" if integer else f"{low:g}..{high:g}"
        if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
            raise self.fail(node, field, f"must be {'an integer' if integer else 'a number'} {bounds}")
        if math.isnan(value) or not low <= value <= high:
            raise self.fail(node, field, f"must be {bounds}")
        return value

    def strings(self, node: yaml.Node, field: str) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, field, "must be a list")
        return tuple(self.string(item, f"{field}[{i}]") for i, item in enumerate(node.value))


# Always allowed: the loopback ranges and the name localhost. Anything else must be listed.
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# Link-local and cloud metadata endpoints (credentials live there): allowed only by an entry inside the range
# itself, never by a broad one like 0.0.0.0/0.
SENSITIVE = tuple(ipaddress.ip_network(net) for net in (
    "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32",
))
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def _allowlist_entry(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | str | None:
    """An address/CIDR as a network, a host name lowercased, or None when it is neither."""
    try:
        return ipaddress.ip_network(value.strip("[]"), strict=False)
    except ValueError:
        name = value.lower()
        return name if _DNS_NAME.match(name) else None


def upstream_refusal(host: str, allowlist: tuple[str, ...]) -> str | None:
    """Why ``host`` (a name, IPv4 or bracketed IPv6) may not be an upstream under ``allowlist``, or None."""
    entries = [entry for entry in map(_allowlist_entry, allowlist) if entry is not None]
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        name = host.lower().rstrip(".")
        if name == "localhost" or name in entries:
            return None
        return f"host {host!r} is not in settings.upstream_allowlist (names are matched as written)"
    if getattr(address, "ipv4_mapped", None) is not None:
        address = address.ipv4_mapped
    networks = [entry for entry in entries if not isinstance(entry, str) and entry.version == address.version]
    sensitive = next((net for net in SENSITIVE if address in net), None)
    if sensitive is not None:
        if any(address in net and net.subnet_of(sensitive) for net in networks):
            return None
        return (f"address {host} is link-local/metadata ({sensitive}); list it (or a range inside {sensitive}) "
                "in settings.upstream_allowlist to allow it")
    if any(address in net for net in (*LOOPBACK, *networks)):
        return None
    return f"address {host} is not in settings.upstream_allowlist (loopback is allowed by default)"


def _trusted_proxies(r: _Reader, node: yaml.Node) -> tuple[str, ...]:
    """settings.trusted_proxies: addresses/CIDRs, kept in canonical form (what nginx's set_real_ip_from gets)."""
    networks = []
    for i, entry in enumerate(r.strings(node, "settings.trusted_proxies")):
        try:
            networks.append(str(ipaddress.ip_network(entry.strip("[]"), strict=False)))
        except ValueError:
            raise r.fail(node.value[i], f"settings.trusted_proxies[{i}]",
                         f"{entry!r} is not an address or CIDR") from None
    return tuple(networks)


def _sticky(r: _Reader, node: yaml.Node) -> StickySpec:
    """The sticky section: the cookie (name and the attributes the planes set it with) and the header."""
    items = r.mapping(node, "sticky", {"cookie", "header", "set_cookie", "max_age", "secure", "same_site",
                                       "http_only"})
    default = StickySpec()
    header = default.header
    if "header" in items:
        header = None if r.scalar(items["header"][1], "sticky.header") is None else \
            r.string(items["header"][1], "sticky.header", _HEADER, "letters, digits, -")
    same_site = default.same_site
    if "same_site" in items:
        same_site = r.string(items["same_site"][1], "sticky.same_site")
        if same_site not in SAME_SITE_VALUES:
            raise r.fail(items["same_site"][1], "sticky.same_site", f"must be one of {', '.join(SAME_SITE_VALUES)}")
    flag = lambda key: r.boolean(items[key][1], f"sticky.{key}") if key in items else getattr(default, key)  # noqa: E731
    return StickySpec(
        cookie=r.string(items["cookie"][1], "sticky.cookie", _COOKIE, "letters, digits, _")
        if "cookie" in items else default.cookie,
        header=header,
        set_cookie=flag("set_cookie"),
        max_age=int(r.number(items["max_age"][1], "sticky.max_age", 0, 10 * 365 * 24 * 3600, integer=True))
        if "max_age" in items else default.max_age,
        secure=flag("secure"),
        same_site=same_site,  # type: ignore[arg-type]
        http_only=flag("http_only"),
    )


def _read_your_writes(r: _Reader, node: yaml.Node) -> ReadYourWritesSettings:
    """settings.read_your_writes: the cookie's name, its lives (tracked positions, owner pin) and the key's env."""
    field, default = "settings.read_your_writes", ReadYourWritesSettings()
    items = r.mapping(node, field, {"cookie", "max_age", "window", "secret_env"})
    seconds = lambda key: int(r.number(items[key][1], f"{field}.{key}", 1, 3600, integer=True)) \
        if key in items else getattr(default, key)  # noqa: E731
    return ReadYourWritesSettings(
        cookie=r.string(items["cookie"][1], f"{field}.cookie", _COOKIE, "letters, digits, _")
        if "cookie" in items else default.cookie,
        max_age=seconds("max_age"),
        window=seconds("window"),
        secret_env=r.string(items["secret_env"][1], f"{field}.secret_env", re.compile(r"^[A-Z_][A-Z0-9_]*$"))
        if "secret_env" in items else default.secret_env,
    )


def _upstream(r: _Reader, name: str, key_node: yaml.Node, node: yaml.Node, health_default: str) -> Upstream:
    field = f"upstreams.{name}"
    if not _NAME.match(name):
        raise r.fail(key_node, field, "upstream names are lowercase letters, digits and _ (starting with a letter)")
    if isinstance(node, yaml.ScalarNode):  # shorthand: `catalog: http://127.0.0.1:8001`
        items = {"url": (node, node)}
    else:
        items = r.mapping(node, field, {"url", "health_path"})
    if "url" not in items:
        raise r.fail(node, f"{field}.url", "required")
    url_node = items["url"][1]
    url = r.string(url_node, f"{field}.url")
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if (parts.scheme != "http" or not _NETLOC.match(parts.netloc) or port is None or parts.path not in ("", "/")
            or parts.query or parts.fragment):
        raise r.fail(url_node, f"{field}.url", f"must be http://host:port without a path, got {url!r}")
    health = health_default
    if "health_path" in items:
        health = r.string(items["health_path"][1], f"{field}.health_path", _PREFIX, "an absolute path")
    return Upstream(name=name, url=f"http://{parts.netloc}", health_path=health)


def _diff(r: _Reader, node: yaml.Node, field: str) -> DiffRules:
    items = r.mapping(node, field, {"ignore", "unordered", "headers", "learn_noise"})
    ignore = r.strings(items["ignore"][1], f"{field}.ignore") if "ignore" in items else ()
    unordered = r.strings(items["unordered"][1], f"{field}.unordered") if "unordered" in items else ()
    for sub, values in (("ignore", ignore), ("unordered", unordered)):
        for i, value in enumerate(values):
            if not value.startswith("$"):
                raise r.fail(items[sub][1].value[i], f"{field}.{sub}[{i}]", "JSON paths start with '$'")
    headers = tuple(h.lower() for h in r.strings(items["headers"][1], f"{field}.headers")) if "headers" in items else ()
    learn = r.boolean(items["learn_noise"][1], f"{field}.learn_noise") if "learn_noise" in items else True
    return DiffRules(ignore=ignore, unordered=unordered, headers=headers, learn_noise=learn)


def _shadow(r: _Reader, node: yaml.Node, field: str, upstreams: dict[str, Upstream]) -> ShadowSpec:
    items = r.mapping(node, field, {"sample", "unsafe_methods", "target"})
    sample = float(r.number(items["sample"][1], f"{field}.sample", 0, 1)) if "sample" in items else 1.0
    unsafe = r.boolean(items["unsafe_methods"][1], f"{field}.unsafe_methods") if "unsafe_methods" in items else False
    target = None
    if "target" in items:
        target = r.string(items["target"][1], f"{field}.target")
        if target not in upstreams:
            raise r.fail(items["target"][1], f"{field}.target", f"unknown upstream {target!r}")
    return ShadowSpec(sample=sample, unsafe_methods=unsafe, target=target)


def _access_log(r: _Reader, node: yaml.Node) -> str:
    # Read the scalar's text, not its YAML value: an unquoted `off` is the boolean false in YAML 1.1.
    if not isinstance(node, yaml.ScalarNode):
        raise r.fail(node, "settings.access_log", "must be a single value")
    if node.value not in ACCESS_LOG_MODES:
        raise r.fail(node, "settings.access_log",
                     f"must be one of {', '.join(ACCESS_LOG_MODES)}, got {node.value[:40]!r}")
    return node.value


def _noise(r: _Reader, node: yaml.Node) -> NoiseSettings:
    field, default = "settings.noise", NoiseSettings()
    items = r.mapping(node, field, {"file", "expiry", "generalise_after", "min_evidence"})
    return NoiseSettings(
        file=r.string(items["file"][1], f"{field}.file") if "file" in items else default.file,
        expiry=float(r.number(items["expiry"][1], f"{field}.expiry", 1, 10 * 365 * 86400, integer=True))
        if "expiry" in items else default.expiry,
        generalise_after=int(r.number(items["generalise_after"][1], f"{field}.generalise_after", 2, 10**6,
                                      integer=True)) if "generalise_after" in items else default.generalise_after,
        min_evidence=int(r.number(items["min_evidence"][1], f"{field}.min_evidence", 1, 10**6, integer=True))
        if "min_evidence" in items else default.min_evidence,
    )

def _identity(r: _Reader, node: yaml.Node, upstreams: dict[str, Upstream], monolith: str) -> IdentitySettings:
    field, default = "settings.identity", IdentitySettings()
    items = r.mapping(node, field, {"upstreams", "endpoint", "header", "cookies", "timeout", "cache_ttl",
                                    "cache_size"})
    names = r.strings(items["upstreams"][1], f"{field}.upstreams") if "upstreams" in items else ()
    for i, name in enumerate(names):
        if name not in upstreams or name == monolith:
            raise r.fail(items["upstreams"][1].value[i], f"{field}.upstreams[{i}]",
                         f"{name!r} is not a service upstream (the monolith resolves identities itself)")
    cookies = default.cookies
    if "cookies" in items:
        cookies = r.strings(items["cookies"][1], f"{field}.cookies")
        for i, cookie in enumerate(cookies):
            if not _COOKIE.match(cookie):
                raise r.fail(items["cookies"][1].value[i], f"{field}.cookies[{i}]",
                             f"invalid cookie name {cookie!r} (letters, digits, _)")
    endpoint = default.endpoint
    if "endpoint" in items:
        endpoint = r.string(items["endpoint"][1], f"{field}.endpoint", _PREFIX, "an absolute path on the monolith")
        if any(seg in (".", "..") for seg in endpoint.split("/")) or "//" in endpoint:
            raise r.fail(items["endpoint"][1], f"{field}.endpoint", "must be canonical (no '//', '.' or '..')")
    return IdentitySettings(
        upstreams=tuple(dict.fromkeys(names)),
        endpoint=endpoint,
        header=r.string(items["header"][1], f"{field}.header", _HEADER, "letters, digits, -")
        if "header" in items else default.header,
        cookies=cookies,
        timeout=float(r.number(items["timeout"][1], f"{field}.timeout", 0.001, 300))
        if "timeout" in items else default.timeout,
        cache_ttl=float(r.number(items["cache_ttl"][1], f"{field}.cache_ttl", 0, 3600))
        if "cache_ttl" in items else default.cache_ttl,
        cache_size=int(r.number(items["cache_size"][1], f"{field}.cache_size", 1, 10**7, integer=True))
        if "cache_size" in items else default.cache_size,
    )


URL_LINE_ROOM = 64  # bytes of a request line besides its target: the method, two spaces, HTTP/1.1, CRLF
# Limit settings: (lowest, highest, integer). nginx needs whole seconds >= 1 and header buffers >= 1 KiB.
_LIMITS = {
    "max_body_bytes": (1, 2**40, True),
    "max_url_bytes": (64, 1024 * 1024, True),
    "max_header_bytes": (1024, 1024 * 1024, True),
    "max_header_buffers": (1, 64, True),
    "max_headers": (1, 10000, True),
    "client_header_timeout": (1, 3600, True),
    "client_body_timeout": (1, 3600, True),
    "idle_timeout": (1, 3600, True),
    "max_connections_per_client": (0, 1000000, True),
    "breaker_window": (1, 3600, True),
    "hold_retry_after": (1, 3600, True),
    "hold_queue_seconds": (1, 300, True),
}
_SETTINGS = {"route_headers", "diff_endpoint", "access_log", "health_path", "noise", "upstream_allowlist",
             "trusted_proxies", "exposed_ops", "read_your_writes", "identity", *_LIMITS}

# The loader's value rules, public for strangler_proxy.schema: the JSON Schema says what this module accepts.
VALUE_PATTERNS: dict[str, re.Pattern] = {
    "name": _NAME, "method": _TOKEN, "header": _HEADER, "cookie": _COOKIE, "path": _PREFIX, "host_port": _HOST_PORT,
}
SETTING_LIMITS: dict[str, tuple[int, int, bool]] = _LIMITS

_ROUTE_KEYS = {
    "prefix", "path", "pattern", "match", "methods", "mode", "service", "weight", "shadow", "fallback", "timeout",
    "diff", "read_your_writes", "hold",
}


def _route(r: _Reader, index: int, node: yaml.Node, upstreams: dict[str, Upstream], monolith: str) -> Route:
    field = f"routes[{index}]"
    items = r.mapping(node, field, _ROUTE_KEYS)
    given = [key for key in ("prefix", "path", "pattern") if key in items]
    if len(given) > 1:
        raise r.fail(node, field, "give one of prefix (match: prefix), path (match: exact) or pattern, not several")
    if not given:
        raise r.fail(node, f"{field}.prefix", "required")
    key = given[0]
    prefix_node = items[key][1]
    prefix = r.string(prefix_node, f"{field}.{key}", _PREFIX, "an absolute path of plain ASCII, no %-escapes")
    segments = prefix.split("/")
    if "//" in prefix or any(seg in (".", "..") for seg in segments):
        raise r.fail(prefix_node, f"{field}.{key}", "must be canonical (no '//', '.' or '..' segments)")
    wildcards = [seg for seg in segments if "*" in seg]
    if key == "pattern" and (not wildcards or any(seg != "*" for seg in wildcards)):
        raise r.fail(prefix_node, f"{field}.pattern", "'*' stands for one whole segment, like /api/items/*/notes/")
    match = {"prefix": "prefix", "path": "exact", "pattern": "pattern"}[key]
    if "match" in items:
        if key == "pattern":
            raise r.fail(items["match"][1], f"{field}.match", "a pattern matches the start of paths; omit match")
        match = r.string(items["match"][1], f"{field}.match")
        if match not in MATCH_KINDS:
            raise r.fail(items["match"][1], f"{field}.match", f"must be one of {', '.join(MATCH_KINDS)}")
    methods = None
    if "methods" in items:
        names = r.strings(items["methods"][1], f"{field}.methods")
        upper = [m.upper() for m in names]
        for i, m in enumerate(upper):
            if not _TOKEN.match(m):
                raise r.fail(items["methods"][1].value[i], f"{field}.methods[{i}]", f"invalid method {names[i]!r}")
        if not upper:
            raise r.fail(items["methods"][1], f"{field}.methods", "must not be empty (omit it for every method)")
        methods = frozenset(upper)
    mode = "monolith"
    if "mode" in items:
        mode = r.string(items["mode"][1], f"{field}.mode")
        if mode not in MODES:
            raise r.fail(items["mode"][1], f"{field}.mode", f"unknown mode {mode!r} (one of {', '.join(MODES)})")
    service = None
    if "service" in items:
        service = r.string(items["service"][1], f"{field}.service")
        if service not in upstreams:
            raise r.fail(items["service"][1], f"{field}.service", f"unknown upstream {service!r}")
        if service == monolith:
            raise r.fail(items["service"][1], f"{field}.service", "must not be the monolith upstream")
    elif mode != "monolith":
        raise r.fail(items["mode"][1], f"{field}.service", f"required in {mode} mode")
    weight = 0
    if "weight" in items:
        weight = int(r.number(items["weight"][1], f"{field}.weight", 0, 100, integer=True))
        if mode != "canary":
            raise r.fail(items["weight"][1], f"{field}.weight", "only canary routes have a weight")
    elif mode == "canary":
        raise r.fail(items["mode"][1], f"{field}.weight", "required in canary mode")
    shadow = _shadow(r, items["shadow"][1], f"{field}.shadow", upstreams) if "shadow" in items else None
    if mode == "shadow" and shadow is None:
        shadow = ShadowSpec()
    fallback = r.boolean(items["fallback"][1], f"{field}.fallback") if "fallback" in items else False
    timeout = float(r.number(items["timeout"][1], f"{field}.timeout", 0.001, 3600)) if "timeout" in items else 30.0
    diff = _diff(r, items["diff"][1], f"{field}.diff") if "diff" in items else DiffRules()
    read_your_writes = None
    if "read_your_writes" in items:
        read_your_writes = r.boolean(items["read_your_writes"][1], f"{field}.read_your_writes")
        if read_your_writes and mode not in ("canary", "service"):
            raise r.fail(items["read_your_writes"][1], f"{field}.read_your_writes",
                         "only canary and service routes send reads elsewhere than the monolith")
    hold = None
    hold_node = items["hold"][1] if "hold" in items else None
    if hold_node is not None and not (isinstance(hold_node, yaml.ScalarNode) and hold_node.tag.endswith(":null")):
        hold = r.string(hold_node, f"{field}.hold")
        if hold not in HOLD_MODES:
            raise r.fail(items["hold"][1], f"{field}.hold", f"must be one of {', '.join(HOLD_MODES)} (or null)")
    return Route(
        prefix=prefix, match=match, methods=methods, mode=mode, service=service, weight=weight, shadow=shadow,
        fallback=fallback, timeout=timeout, diff=diff, read_your_writes=read_your_writes, hold=hold,
        line=node.start_mark.line + 1,
    )


def parse_route_text(text: str, *, source: str) -> RouteTable:
    r = _Reader(source)
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f" (column {mark.column + 1})" if mark else ""
        raise RouteFileError(source, mark.line + 1 if mark else 1, "file", f"not valid YAML: {problem}{where}") from exc
    if root is None:
        raise RouteFileError(source, 1, "file", "empty route file")
    top = r.mapping(root, "", {"upstreams", "monolith", "routes", "sticky", "override", "settings"})
    for required in ("upstreams", "monolith"):
        if required not in top:
            raise r.fail(root, required, "required")

    # settings.health_path: what every upstream answers health checks on unless it names its own
    setting_items = r.mapping(top["settings"][1], "settings", _SETTINGS) if "settings" in top else {}
    health_default = r.string(setting_items["health_path"][1], "settings.health_path", _PREFIX, "an absolute path") \
        if "health_path" in setting_items else ProxySettings.health_path
    up_node = top["upstreams"][1]
    upstreams = {name: _upstream(r, name, k, v, health_default)
                 for name, (k, v) in r.mapping(up_node, "upstreams", set()).items()}
    if not upstreams:
        raise r.fail(up_node, "upstreams", "at least one upstream (the monolith) is required")
    mono_node = top["monolith"][1]
    monolith = r.string(mono_node, "monolith")
    if monolith not in upstreams:
        raise r.fail(mono_node, "monolith", f"unknown upstream {monolith!r}")

    routes: list[Route] = []
    if "routes" in top:
        routes_node = top["routes"][1]
        if not isinstance(routes_node, yaml.SequenceNode):
            raise r.fail(routes_node, "routes", "must be a list")
        seen: dict[tuple, int] = {}
        for index, node in enumerate(routes_node.value):
            route = _route(r, index, node, upstreams, monolith)
            identity = (route.prefix, route.match, route.methods)
            if identity in seen:
                raise r.fail(node, f"routes[{index}].prefix",
                             f"duplicate of the route on line {seen[identity]} (same prefix, match and methods)")
            seen[identity] = route.line
            for other in routes:  # same path, overlapping method lists: which one wins would be file order
                if (other.prefix, other.match) == (route.prefix, route.match) and route.methods and other.methods \
                        and route.methods & other.methods:
                    shared = ", ".join(sorted(route.methods & other.methods))
                    raise r.fail(node, f"routes[{index}].methods",
                                 f"{shared} already routed by the route on line {other.line} for the same path")
            routes.append(route)

    sticky = _sticky(r, top["sticky"][1]) if "sticky" in top else StickySpec()

    override = OverrideSpec()
    if "override" in top:
        items = r.mapping(top["override"][1], "override", {"header", "secret_env"})
        override = OverrideSpec(
            header=r.string(items["header"][1], "override.header", _HEADER, "letters, digits, -")
            if "header" in items else override.header,
            secret_env=r.string(items["secret_env"][1], "override.secret_env", re.compile(r"^[A-Z_][A-Z0-9_]*$"))
            if "secret_env" in items else override.secret_env,
        )

    settings = ProxySettings()
    if "settings" in top:
        items = setting_items
        limits: dict = {}
        if "upstream_allowlist" in items:
            allow_node = items["upstream_allowlist"][1]
            allowlist = r.strings(allow_node, "settings.upstream_allowlist")
            for i, entry in enumerate(allowlist):
                if _allowlist_entry(entry) is None:
                    raise r.fail(allow_node.value[i], f"settings.upstream_allowlist[{i}]",
                                 f"{entry!r} is neither a host name nor an address/CIDR")
            limits["upstream_allowlist"] = allowlist
        if "exposed_ops" in items:
            exposed = r.strings(items["exposed_ops"][1], "settings.exposed_ops")
            for i, prefix in enumerate(exposed):
                if prefix not in OPS_PREFIXES:
                    raise r.fail(items["exposed_ops"][1].value[i], f"settings.exposed_ops[{i}]",
                                 f"{prefix!r} is not an ops prefix ({', '.join(OPS_PREFIXES)})")
            limits["exposed_ops"] = exposed
        if "trusted_proxies" in items:
            limits["trusted_proxies"] = _trusted_proxies(r, items["trusted_proxies"][1])
        if "identity" in items:
            limits["identity"] = _identity(r, items["identity"][1], upstreams, monolith)
        for key, (low, high, integer) in _LIMITS.items():
            if key in items:
                value = r.number(items[key][1], f"settings.{key}", low, high, integer=integer)
                limits[key] = int(value) if integer else float(value)
        header_bytes = limits.get("max_header_bytes", settings.max_header_bytes)
        if limits.get("max_url_bytes", settings.max_url_bytes) + URL_LINE_ROOM > header_bytes:
            node = items["max_url_bytes" if "max_url_bytes" in items else "max_header_bytes"][1]
            raise r.fail(node, "settings.max_url_bytes",
                         f"must be at most max_header_bytes - {URL_LINE_ROOM} ({header_bytes - URL_LINE_ROOM}): "
                         "nginx reads the whole request line into one header buffer")
        settings = ProxySettings(
            **limits,
            health_path=health_default,
            route_headers=r.boolean(items["route_headers"][1], "settings.route_headers")
            if "route_headers" in items else settings.route_headers,
            diff_endpoint=r.string(items["diff_endpoint"][1], "settings.diff_endpoint", _HOST_PORT, "host:port")
            if "diff_endpoint" in items else settings.diff_endpoint,
            access_log=_access_log(r, items["access_log"][1]) if "access_log" in items else settings.access_log,
            noise=_noise(r, items["noise"][1]) if "noise" in items else settings.noise,
            read_your_writes=_read_your_writes(r, items["read_your_writes"][1])
            if "read_your_writes" in items else settings.read_your_writes,
        )

    for name, (_, node) in r.mapping(up_node, "upstreams", set()).items():
        host = upstreams[name].host_port.rsplit(":", 1)[0]
        if (reason := upstream_refusal(host, settings.upstream_allowlist)) is not None:
            url_node = node if isinstance(node, yaml.ScalarNode) else r.mapping(node, name, set())["url"][1]
            raise r.fail(url_node, f"upstreams.{name}.url", reason)
    diff_host = settings.diff_endpoint.rsplit(":", 1)[0]
    if (reason := upstream_refusal(diff_host, settings.upstream_allowlist)) is not None:
        raise r.fail(top["settings"][1], "settings.diff_endpoint", reason)
    return RouteTable(
        upstreams=MappingProxyType(upstreams),
        monolith=monolith,
        routes=tuple(routes),
        sticky=sticky,
        override=override,
        settings=settings,
        source=source,
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )
