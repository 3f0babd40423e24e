"""The side_by_side pytest plugin against a live monolith and a live catalog service.

The plugin is loaded through its pytest11 entry point (nothing in conftest), reads the diff rules of the
real route file, and fails with the differing fields when the service answers differently.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest

from migrations_plan.regression.compare import SideBySide
from migrations_plan.regression.pytest_plugin import SideBySideFixture, SideBySideMismatch
from strangler_proxy.loader import load_route_file
from tests.migrations_plan.sidebyside_live import SHARED_HOST, live_pair_start


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    started = live_pair_start(workdir=tmp_path_factory.mktemp("sbs-regression"))
    yield started
    started.stop()


ROUTES = """
upstreams:
  monolith: http://127.0.0.1:9
  catalog: http://127.0.0.1:9
monolith: monolith
routes:
  - prefix: /api/products/
    mode: shadow
    service: catalog
    diff: {ignore: ["$.results[*].updated_at"], headers: [content-type]}
  - prefix: /api/categories/
    mode: shadow
    service: catalog
"""


@pytest.fixture(scope="module")
def routes_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sbs-routes") / "routes.yaml"
    path.write_text(ROUTES)
    return str(path)


@pytest.fixture
def side_by_side_config(pair, routes_file):
    return {"monolith_url": pair.monolith.url, "service_url": pair.service.url, "host": SHARED_HOST,
            "routes": routes_file}


@pytest.mark.side_by_side(route="/api/products/")
@pytest.mark.parametrize("path", [
    "/api/products/", "/api/products/?page=2&page_size=7", "/api/products/?ordering=-price",
    "/api/products/?min_price=abc", "/api/products/999999/",
])
def test_product_api_is_the_same_on_both_sides(side_by_side, path):
    exchange = side_by_side.check(path)
    assert exchange.monolith.status == exchange.service.status
    assert exchange.route == "/api/products/"


@pytest.mark.side_by_side("/api/categories/")
def test_route_as_positional_marker_argument(side_by_side):
    assert side_by_side.check("/api/categories/?page=1").route == "/api/categories/"


@pytest.mark.side_by_side
def test_route_is_matched_per_path_without_a_marker_route(side_by_side, pair):
    exchange = side_by_side.check(f"/api/products/{pair.product_ids[3]}/")
    assert exchange.route == "/api/products/" and exchange.monolith.status == 200
    assert side_by_side.check("/api/categories/").route == "/api/categories/"


@pytest.fixture(scope="module")
def renamed_pair(tmp_path_factory, pair):
    """The same data, but the service's copy of one product has another name."""
    product_id = pair.product_ids[0]
    started = live_pair_start(workdir=tmp_path_factory.mktemp("sbs-renamed"),
                              rename_in_service={product_id: "Renamed In The Service"})
    yield started, product_id
    started.stop()


def test_a_real_difference_fails_with_field_paths_and_both_values(renamed_pair, routes_file):
    pair, product_id = renamed_pair
    comparer = SideBySide(table=load_route_file(routes_file), monolith_url=pair.monolith.url,
                          service_url=pair.service.url, host=SHARED_HOST)
    with pytest.raises(SideBySideMismatch) as caught:
        SideBySideFixture(comparer).check(f"/api/products/{product_id}/")
    lines = str(caught.value).splitlines()
    assert lines[1] == (f"GET /api/products/{product_id}/ (route /api/products/): "
                        "1 difference (monolith 200, service 200)")
    assert re.fullmatch(r'  \$\.name: monolith "[^"]+" != service "Renamed In The Service"', lines[2]), lines
    # On a list page the concrete element is named (ordered by price: the new name does not move it).
    exchange = comparer.compare("GET", "/api/products/?page_size=50&ordering=price")
    assert exchange.monolith.status == 200 and exchange.monolith.body != exchange.service.body
    assert [d.path for d in exchange.result.differences] == [
        f"$.results[{index}].name" for index, item in enumerate(json.loads(exchange.monolith.body)["results"])
        if item["id"] == product_id
    ]


def test_plugin_run_by_pytest_reports_the_diff_and_fails(renamed_pair, routes_file, tmp_path):
    """A user's test file run by a separate pytest: the entry point loads the plugin, the failure is readable."""
    pair, product_id = renamed_pair
    (tmp_path / "test_user.py").write_text(textwrap.dedent(f"""
        import pytest

        @pytest.mark.side_by_side(route="/api/products/")
        def test_same(side_by_side):
            side_by_side.check("/api/products/{product_id}/")

        @pytest.mark.side_by_side(route="/api/categories/")
        def test_categories_same(side_by_side):
            side_by_side.check("/api/categories/")

        @pytest.mark.side_by_side(route="/api/nope/")
        def test_unknown_route(side_by_side):
            pass
    """))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:django", "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path),
         "-c", "/dev/null", f"--side-by-side-routes={routes_file}", f"--side-by-side-monolith={pair.monolith.url}",
         f"--side-by-side-service={pair.service.url}", f"--side-by-side-host={SHARED_HOST}", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "1 failed, 1 passed, 1 error" in out, out  # the unknown route fails in the fixture
    assert "SideBySideMismatch: side by side: the service does not answer like the monolith" in out
    assert '$.name: monolith "' in out and '!= service "Renamed In The Service"' in out
    assert f"\nside_by_side: {routes_file}: no route with prefix '/api/nope/' " \
           "(routes: /api/products/, /api/categories/)\n" in out
    assert "During handling" not in out


def test_plugin_run_by_pytest_says_how_many_comparisons_each_noise_rule_suppressed(pair, tmp_path):
    # Each side makes a new x-request-id per answer: compared on purpose, only learned noise keeps it quiet.
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.replace("headers: [content-type]", "headers: [content-type, x-request-id]"))
    (tmp_path / "test_user.py").write_text(textwrap.dedent(f"""
        import pytest

        @pytest.mark.side_by_side(route="/api/products/")
        @pytest.mark.parametrize("pid", {list(pair.product_ids[:3])!r})
        def test_same(side_by_side, pid):
            side_by_side.check(f"/api/products/{{pid}}/")
    """))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:django", "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path),
         "-c", "/dev/null", f"--side-by-side-routes={routes}", f"--side-by-side-monolith={pair.monolith.url}",
         f"--side-by-side-service={pair.service.url}", f"--side-by-side-host={SHARED_HOST}", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "side by side: learned noise" in out
    assert ("/api/products/ header:x-request-id: suppressed differences in 3 comparison(s); "
            "differed in 3 pair(s) of monolith answers") in out, out
