"""Route file loading: the shipped file parses, and every mistake names file, line and field."""

from __future__ import annotations

import textwrap

import pytest

from strangler_proxy.loader import DEFAULT_ROUTE_FILE, RouteFileError, load_route_file, parse_route_text
from strangler_proxy.spec import DiffRules, NoiseSettings, ShadowSpec

BASE = """\
upstreams:
  monolith: http://127.0.0.1:8000
  catalog:
    url: http://127.0.0.1:8001
    health_path: /ready
monolith: monolith
routes:
  - prefix: /api/products/
    mode: canary
    weight: 10
    service: catalog
"""


def parse(extra_routes: str = "", base: str = BASE):
    return parse_route_text(base + textwrap.indent(textwrap.dedent(extra_routes), "  "), source="routes.yaml")


def error_of(text: str) -> RouteFileError:
    with pytest.raises(RouteFileError) as info:
        parse_route_text(text, source="routes.yaml")
    return info.value


def test_the_shipped_route_file_loads():
    table = load_route_file(DEFAULT_ROUTE_FILE)
    assert set(table.upstreams) == {"monolith", "catalog"}
    assert table.upstreams["catalog"].url == "http://127.0.0.1:8001"
    assert [(r.prefix, r.mode) for r in table.routes] == [
        ("/api/products/", "monolith"), ("/api/products/*/rating/", "monolith"), ("/api/categories/", "monolith"),
    ]
    assert len(table.digest) == 64 and table.source == str(DEFAULT_ROUTE_FILE)


def test_full_route_is_typed():
    table = parse("""\
      - path: /api/products/featured
        methods: [get, HEAD]
        mode: shadow
        service: catalog
        shadow: {sample: 0.5, unsafe_methods: true, target: catalog}
        fallback: true
        timeout: 2.5
        diff:
          ignore: ["$.results[*].updated_at"]
          unordered: ["$.results"]
          headers: [Content-Type]
          learn_noise: false
    """)
    route = table.routes[1]
    assert route.match == "exact" and route.prefix == "/api/products/featured"
    assert route.methods == frozenset({"GET", "HEAD"})
    assert route.shadow == ShadowSpec(sample=0.5, unsafe_methods=True, target="catalog")
    assert (route.fallback, route.timeout, route.line) == (True, 2.5, 12)
    assert route.diff == DiffRules(ignore=("$.results[*].updated_at",), unordered=("$.results",),
                                   headers=("content-type",), learn_noise=False)
    assert table.upstreams["catalog"].health_path == "/ready"
    assert table.routes[0].weight == 10 and table.routes[0].shadow is None


def test_health_path_setting_is_every_upstream_s_default():
    assert parse().upstreams["monolith"].health_path == "/healthz"  # nothing set: the servicekit convention
    table = parse(base=BASE + "settings:\n  health_path: /-/alive\n")
    assert table.settings.health_path == "/-/alive"
    assert table.upstreams["monolith"].health_path == "/-/alive"
    assert table.upstreams["catalog"].health_path == "/ready"  # an upstream's own wins
    with pytest.raises(RouteFileError, match="settings.health_path"):
        parse(base=BASE + "settings:\n  health_path: alive\n")


def test_access_log_setting():
    assert parse().settings.access_log == "buffered"
    for value in ("buffered", "unbuffered", "off", "'off'"):  # an unquoted off is YAML's false: read as written
        table = parse_route_text(BASE + f"settings: {{access_log: {value}}}\n", source="routes.yaml")
        assert table.settings.access_log == value.strip("'")


def test_noise_settings_and_their_errors():
    assert parse().settings.noise == NoiseSettings()
    table = parse_route_text(BASE + "settings:\n  noise: {file: var/noise.json, expiry: 600, generalise_after: 3}\n",
                             source="routes.yaml")
    assert table.settings.noise == NoiseSettings(file="var/noise.json", expiry=600, generalise_after=3)
    for noise, message in (("{expiry: 0}", "settings.noise.expiry: must be 1..315360000"),
                           ("{generalise_after: 1}", "settings.noise.generalise_after: must be 2..1000000"),
                           ("{min_evidence: 0.5}", "settings.noise.min_evidence: must be an integer 1..1000000"),
                           ("{file: ''}", "settings.noise.file: must be a non-empty string"),
                           ("{ttl: 5}", "settings.noise.ttl: unknown key")):
        with pytest.raises(RouteFileError) as caught:
            parse_route_text(BASE + f"settings: {{noise: {noise}}}\n", source="routes.yaml")
        assert message in str(caught.value)


def test_pattern_route():
    route = parse("- pattern: /api/products/*/rating/\n  mode: service\n  service: catalog\n").routes[1]
    assert (route.prefix, route.match, route.pattern_lead) == ("/api/products/*/rating/", "pattern", "/api/products/")


def test_shadow_mode_gets_a_default_shadow_spec():
    table = parse("- prefix: /api/search/\n  mode: shadow\n  service: catalog\n")
    assert table.routes[1].shadow == ShadowSpec()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE.replace("service: catalog", "service: nosuch"),
         "routes.yaml:11: routes[0].service: unknown upstream 'nosuch'"),
        (BASE.replace("weight: 10", "weight: 150"), "routes.yaml:10: routes[0].weight: must be 0..100"),
        (BASE.replace("weight: 10", "weight: -1"), "routes.yaml:10: routes[0].weight: must be 0..100"),
        (BASE.replace("weight: 10", "weight: 12.5"), "routes.yaml:10: routes[0].weight: must be an integer 0..100"),
        (BASE.replace("weight: 10", "weight: ten"), "routes.yaml:10: routes[0].weight: must be an integer 0..100"),
        (BASE + "  - prefix: /api/products/\n    mode: monolith\n",
         "routes.yaml:12: routes[1].prefix: duplicate of the route on line 8 (same prefix, match and methods)"),
        (BASE.replace("    service: catalog\n", "    service: catalog\n    colour: red\n"),
         "routes.yaml:12: routes[0].colour: unknown key"),
        (BASE.replace("mode: canary", "mode: blue-green"), "routes.yaml:9: routes[0].mode: unknown mode 'blue-green'"),
        (BASE.replace("http://127.0.0.1:8001", "https://127.0.0.1:8001"),
         "routes.yaml:4: upstreams.catalog.url: must be"),
        (BASE.replace("http://127.0.0.1:8001", "http://127.0.0.1:8001/api"), "routes.yaml:4: upstreams.catalog.url:"),
        (BASE.replace("http://127.0.0.1:8001", "http://127.0.0.1"), "routes.yaml:4: upstreams.catalog.url:"),
        (BASE.replace("http://127.0.0.1:8001", "http://user@127.0.0.1:8001"), "routes.yaml:4: upstreams.catalog.url:"),
        (BASE.replace("http://127.0.0.1:8001", "'http://a;b:8001'"), "routes.yaml:4: upstreams.catalog.url:"),
        (BASE.replace("http://127.0.0.1:8001", "http://127.0.0.1:99999"), "routes.yaml:4: upstreams.catalog.url:"),
        (BASE.replace("/api/products/", "/api/$host/"), "routes.yaml:8: routes[0].prefix: invalid value"),
        (BASE.replace("monolith: monolith", "monolith: catalogue"), "routes.yaml:6: monolith: unknown upstream"),
        (BASE.replace("monolith: monolith\n", ""), "routes.yaml:1: monolith: required"),
        (BASE.replace("    service: catalog\n", ""), "routes.yaml:9: routes[0].service: required in canary mode"),
        (BASE.replace("    weight: 10\n", ""), "routes.yaml:9: routes[0].weight: required in canary mode"),
        (BASE.replace("mode: canary", "mode: service"), "routes.yaml:10: routes[0].weight: only canary routes"),
        (BASE.replace("/api/products/", "api/products/"), "routes.yaml:8: routes[0].prefix: invalid value"),
        (BASE.replace("/api/products/", "/api//products/"), "routes.yaml:8: routes[0].prefix: must be canonical"),
        (BASE.replace("/api/products/", "/api/../admin/"), "routes.yaml:8: routes[0].prefix: must be canonical"),
        (BASE.replace("/api/products/", "/api/%70roducts/"), "routes.yaml:8: routes[0].prefix: invalid value"),
        (BASE.replace("/api/products/", '"/api/pro ducts/"'), "routes.yaml:8: routes[0].prefix: invalid value"),
        (BASE + "sticky: {cookie: 'my-cookie'}\n", "routes.yaml:12: sticky.cookie: invalid value"),
        (BASE + "settings: {max_body_bytes: 0}\n", "routes.yaml:12: settings.max_body_bytes: must be 1..1099511627776"),
        (BASE + "settings: {diff_endpoint: 'localhost'}\n", "routes.yaml:12: settings.diff_endpoint: invalid value"),
        (BASE + "settings:\n  route_headers: true\n  access_log: sometimes\n",
         "routes.yaml:14: settings.access_log: must be one of buffered, unbuffered, off, got 'sometimes'"),
        (BASE + "settings: {access_log: false}\n", "routes.yaml:12: settings.access_log: must be one of"),
        (BASE + "settings: {access_log: [off]}\n", "routes.yaml:12: settings.access_log: must be a single value"),
        (BASE + "extras: 1\n", "routes.yaml:12: extras: unknown key"),
        (BASE.replace("    weight: 10\n", "    weight: 10\n    methods: [GET, 'PO ST']\n"),
         "routes.yaml:11: routes[0].methods[1]: invalid method"),
        (BASE.replace("    weight: 10\n", "    weight: 10\n    timeout: 0\n"),
         "routes.yaml:11: routes[0].timeout: must be"),
        (BASE.replace("    weight: 10\n", "    weight: 10\n    shadow: {sample: 2}\n"),
         "routes.yaml:11: routes[0].shadow.sample: must be 0..1"),
        (BASE.replace("    weight: 10\n", "    weight: 10\n    shadow: {target: nosuch}\n"),
         "routes.yaml:11: routes[0].shadow.target: unknown upstream 'nosuch'"),
        (BASE.replace("    weight: 10\n", "    weight: 10\n    diff: {ignore: [results]}\n"),
         "routes.yaml:11: routes[0].diff.ignore[0]: JSON paths start with '$'"),
        (BASE.replace("    service: catalog\n", "    service: monolith\n"),
         "routes.yaml:11: routes[0].service: must not be the monolith upstream"),
        (BASE.replace("  catalog:\n", "  Catalog-Svc:\n"), "routes.yaml:3: upstreams.Catalog-Svc: upstream names"),
        (BASE.replace("upstreams:\n", "upstreams:\n  monolith: http://127.0.0.1:9\n"),
         "routes.yaml:3: upstreams.monolith: duplicate key"),
        ("routes: [\n", "routes.yaml:2: file: not valid YAML"),
        ("", "routes.yaml:1: file: empty route file"),
        (BASE.replace("    weight: 10\n", "    weight: 10\n    methods: [GET, POST]\n")
         + "  - prefix: /api/products/\n    methods: [PUT, POST]\n    mode: monolith\n",
         "routes.yaml:13: routes[1].methods: POST already routed by the route on line 8 for the same path"),
        (BASE.replace("prefix: /api/products/", "pattern: /api/products/"),
         "routes.yaml:8: routes[0].pattern: '*' stands for one whole segment"),
        (BASE.replace("prefix: /api/products/", "pattern: /api/prod*/"),
         "routes.yaml:8: routes[0].pattern: '*' stands for one whole segment"),
        (BASE.replace("prefix: /api/products/", "pattern: /api/*/x\n    match: exact"),
         "routes.yaml:9: routes[0].match: a pattern matches the start of paths"),
        (BASE.replace("prefix: /api/products/", "pattern: /api/*/x\n    prefix: /api/"),
         "routes.yaml:8: routes[0]: give one of prefix"),
        ("- a\n- b\n", "routes.yaml:1: : must be a mapping"),
    ],
)
def test_errors_name_file_line_and_field(text, expected):
    error = error_of(text)
    assert str(error).startswith(expected), str(error)
    assert error.path == "routes.yaml"
    assert str(error) == f"{error.path}:{error.line}: {error.field}: {error.message}"


def test_ipv6_and_host_names_are_accepted():
    table = parse_route_text(BASE.replace("http://127.0.0.1:8001", "http://[::1]:8001")
                             .replace("http://127.0.0.1:8000", "http://monolith.internal:8000")
                             + "settings: {upstream_allowlist: [Monolith.Internal]}\n", source="r.yaml")
    assert table.upstreams["catalog"].host_port == "[::1]:8001"
    assert table.upstreams["monolith"].host_port == "monolith.internal:8000"


def test_missing_file_is_a_route_file_error(tmp_path):
    with pytest.raises(RouteFileError, match=r"nope\.yaml:0: file:"):
        load_route_file(tmp_path / "nope.yaml")


def test_environment_variable_names_the_default_file(tmp_path, monkeypatch):
    path = tmp_path / "mine.yaml"
    path.write_text(BASE)
    monkeypatch.setenv("STRANGLER_ROUTES", str(path))
    assert load_route_file().source == str(path)
    assert load_route_file(DEFAULT_ROUTE_FILE).source == str(DEFAULT_ROUTE_FILE)  # an explicit path wins


@pytest.mark.parametrize(("host", "allowlist", "error"), [
    ("169.254.169.254", "", "address 169.254.169.254 is link-local/metadata (169.254.0.0/16)"),
    ("169.254.169.254", "[0.0.0.0/0]", "link-local/metadata"),  # a broad range does not allow metadata
    ("[fd00:ec2::254]", "[\"::/0\"]", "link-local/metadata (fd00:ec2::254/128)"),
    ("[fe80::1]", "", "link-local/metadata (fe80::/10)"),
    ("[::ffff:169.254.169.254]", "[0.0.0.0/0]", "link-local/metadata"),
    ("100.100.100.200", "[100.64.0.0/10]", "link-local/metadata"),
    ("10.0.0.5", "", "address 10.0.0.5 is not in settings.upstream_allowlist"),
    ("10.0.0.5", "[10.1.0.0/16]", "not in settings.upstream_allowlist"),
    ("catalog.internal", "", "host 'catalog.internal' is not in settings.upstream_allowlist"),
    ("catalog.internal", "[catalog]", "not in settings.upstream_allowlist"),
])
def test_upstreams_outside_the_allowlist_are_refused_with_one_line(host, allowlist, error):
    text = BASE.replace("http://127.0.0.1:8001", f"http://{host}:8001")
    if allowlist:
        text += f"settings: {{upstream_allowlist: {allowlist}}}\n"
    with pytest.raises(RouteFileError) as caught:
        parse_route_text(text, source="routes.yaml")
    assert str(caught.value).startswith("routes.yaml:4: upstreams.catalog.url: ") and error in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("host", "allowlist"), [
    ("127.0.0.2", ""), ("[::1]", ""), ("localhost", ""), ("10.0.0.5", "[10.0.0.0/8]"),
    ("169.254.169.254", "[169.254.169.254]"), ("169.254.10.1", "[169.254.10.0/24]"),
    ("[fd00:ec2::254]", "[\"fd00:ec2::254\"]"), ("catalog.internal", "[CATALOG.internal]"),
])
def test_loopback_and_listed_upstreams_are_accepted(host, allowlist):
    text = BASE.replace("http://127.0.0.1:8001", f"http://{host}:8001")
    if allowlist:
        text += f"settings: {{upstream_allowlist: {allowlist}}}\n"
    assert parse_route_text(text, source="routes.yaml").upstreams["catalog"].host_port.startswith(host)


def test_the_diff_endpoint_is_held_to_the_allowlist_too():
    with pytest.raises(RouteFileError, match="settings.diff_endpoint: address 169.254.1.1 is link-local"):
        parse_route_text(BASE + "settings: {diff_endpoint: '169.254.1.1:8790'}\n", source="routes.yaml")
    with pytest.raises(RouteFileError, match=r"upstream_allowlist\[0\]: 'a b' is neither"):
        parse_route_text(BASE + "settings: {upstream_allowlist: ['a b']}\n", source="routes.yaml")


STICKY_BASE = "upstreams:\n  monolith: http://127.0.0.1:8000\nmonolith: monolith\nroutes: []\n"


def test_sticky_cookie_attributes_and_trusted_proxies_load():
    table = parse_route_text(STICKY_BASE + "sticky:\n  max_age: 60\n  same_site: None\n  http_only: false\n"
                             "settings:\n  trusted_proxies: [10.1.2.3/8, '::1']\n", source="routes.yaml")
    assert table.sticky.cookie_header("abc") == "strangler_uid=abc; Path=/; Max-Age=60; SameSite=None; Secure"
    assert table.settings.trusted_proxies == ("10.0.0.0/8", "::1/128")


@pytest.mark.parametrize(("extra", "field"), [
    ("sticky:\n  same_site: lax\n", "sticky.same_site"),
    ("sticky:\n  max_age: -1\n", "sticky.max_age"),
    ("sticky:\n  secure: maybe\n", "sticky.secure"),
    ("settings:\n  trusted_proxies: [lb.example.com]\n", "settings.trusted_proxies[0]"),
])
def test_bad_sticky_and_trusted_proxy_settings_are_refused(extra, field):
    assert field in str(error_of(STICKY_BASE + extra))


def test_exposed_ops_lists_only_ops_prefixes():
    table = parse_route_text(STICKY_BASE + "settings:\n  exposed_ops: [/metrics, /admin]\n", source="routes.yaml")
    assert table.settings.exposed_ops == ("/metrics", "/admin")
    assert "settings.exposed_ops[0]" in str(error_of(STICKY_BASE + "settings:\n  exposed_ops: [/api]\n"))
