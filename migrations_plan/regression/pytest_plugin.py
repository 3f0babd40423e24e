"""pytest plugin: the ``side_by_side`` fixture and marker (registered through the ``pytest11`` entry point).

    @pytest.mark.side_by_side(route="/api/products/")
    def test_products_list(side_by_side):
        side_by_side.check("/api/products/?page=2")   # AssertionError listing every differing field

Where things come from (first one set wins): the marker's keywords (``route``, ``monolith_url``,
``service_url``, ``host``, ``routes``), the ``side_by_side_config`` fixture (override it to hand in live
servers), the command line (``--side-by-side-monolith/-service/-routes/-host``), the environment
(``STRANGLER_MONOLITH_URL``, ``STRANGLER_SERVICE_URL``, ``STRANGLER_ROUTES``), and last the route file itself
(its monolith upstream, and the route's service upstream).

Noise learned from the monolith's second answers is kept for the session; at the end of the run the terminal
summary lists each learned rule with the comparisons it suppressed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import pytest

MARKER = "side_by_side"
_CONFIG_KEYS = ("route", "monolith_url", "service_url", "host", "routes")


class SideBySideMismatch(AssertionError):
    """The two sides answered differently; ``exchange`` holds both answers and the differences."""

    def __init__(self, exchange):
        from migrations_plan.regression.compare import exchange_report

        self.exchange = exchange
        super().__init__("side by side: the service does not answer like the monolith\n" + exchange_report(exchange))


class SideBySideFixture:
    """What a test gets: ``check`` asserts equivalence, ``compare`` returns the exchange to inspect."""

    def __init__(self, comparer):
        self.comparer = comparer

    @property
    def monolith_url(self) -> str:
        return self.comparer.monolith_url

    @property
    def service_url(self) -> str:
        return self.comparer.service_url

    def compare(self, path: str, *, method: str = "GET", headers: Iterable[tuple[str, str]] = (),
                body: bytes | None = None):
        return self.comparer.compare(method, path, headers=headers, body=body)

    def check(self, path: str, *, method: str = "GET", headers: Iterable[tuple[str, str]] = (),
              body: bytes | None = None):
        __tracebackhide__ = True  # the failure points at the test's line, not at the plugin
        exchange = self.compare(path, method=method, headers=headers, body=body)
        if not exchange.equal:
            raise SideBySideMismatch(exchange)
        return exchange


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("side_by_side", "side-by-side regression (monolith vs service)")
    group.addoption("--side-by-side-monolith", metavar="URL", help="monolith base URL (env STRANGLER_MONOLITH_URL)")
    group.addoption("--side-by-side-service", metavar="URL", help="service base URL (env STRANGLER_SERVICE_URL)")
    group.addoption("--side-by-side-routes", metavar="FILE",
                    help="route file with the diff rules (env STRANGLER_ROUTES)")
    group.addoption("--side-by-side-host", metavar="HOST", help="Host header sent to both sides")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "side_by_side(route=None, monolith_url=None, service_url=None, host=None, routes=None): "
        "compare the monolith and a service with the route's diff rules (fixture side_by_side)",
    )


def pytest_terminal_summary(terminalreporter) -> None:
    rules = [rule for comparer in _comparers.values() for rule in comparer.noise.rules()]
    if not rules:
        return
    terminalreporter.section("side by side: learned noise")
    for rule in rules:
        terminalreporter.write_line(
            f"{rule['route']} {rule['path']}: suppressed differences in {rule['suppressed']} comparison(s); "
            f"differed in {rule['evidence']} pair(s) of monolith answers")


@pytest.fixture
def side_by_side_config() -> dict[str, Any]:
    """Override to hand the plugin live servers: keys route, monolith_url, service_url, host, routes."""
    return {}


# Noise learned from the monolith's second answers is kept for the session, per route file and pair of sides.
_comparers: dict[tuple, Any] = {}


@pytest.fixture
def side_by_side(request: pytest.FixtureRequest, side_by_side_config: dict[str, Any]) -> SideBySideFixture:
    from migrations_plan.regression.compare import SideBySide, SideBySideError, route_by_prefix
    from strangler_proxy.loader import RouteFileError, load_route_file

    marker = request.node.get_closest_marker(MARKER)
    marked = dict(marker.kwargs) if marker else {}
    if marker and marker.args:  # @pytest.mark.side_by_side("/api/products/") names the route too
        if len(marker.args) > 1 or "route" in marked:
            pytest.fail("side_by_side: one positional argument (the route) at most, and not also route=",
                        pytrace=False)
        marked["route"] = marker.args[0]
    unknown = set(marked) - set(_CONFIG_KEYS) | set(side_by_side_config) - set(_CONFIG_KEYS)
    if unknown:
        pytest.fail(f"side_by_side: unknown setting(s) {sorted(unknown)}; known: {list(_CONFIG_KEYS)}", pytrace=False)
    options = request.config.option
    from_cli = {
        "monolith_url": options.side_by_side_monolith or os.environ.get("STRANGLER_MONOLITH_URL"),
        "service_url": options.side_by_side_service or os.environ.get("STRANGLER_SERVICE_URL"),
        "routes": options.side_by_side_routes,
        "host": options.side_by_side_host,
    }
    settings = {key: marked.get(key) or side_by_side_config.get(key) or from_cli.get(key) for key in _CONFIG_KEYS}
    problem = None
    try:
        table = load_route_file(settings["routes"])
        route = route_by_prefix(table, settings["route"]) if settings["route"] else None
    except (RouteFileError, SideBySideError) as exc:
        problem = f"side_by_side: {exc}"
    if problem:  # failed outside the except block: one line, no chained traceback
        pytest.fail(problem, pytrace=False)
    monolith_url = settings["monolith_url"] or table.upstreams[table.monolith].url
    service_url = settings["service_url"]
    if not service_url and route is not None and route.service:
        service_url = table.upstreams[route.service].url
    if not service_url:
        pytest.fail("side_by_side: no service URL (marker service_url=, --side-by-side-service, "
                    "STRANGLER_SERVICE_URL, or a route= with a service)", pytrace=False)
    key = (table.source, table.digest, monolith_url.rstrip("/"), service_url.rstrip("/"), settings["route"],
           settings["host"])
    comparer = _comparers.get(key)
    if comparer is None:
        comparer = _comparers[key] = SideBySide(table=table, monolith_url=monolith_url.rstrip("/"),
                                                service_url=service_url.rstrip("/"), route_prefix=settings["route"],
                                                host=settings["host"])
    return SideBySideFixture(comparer)
