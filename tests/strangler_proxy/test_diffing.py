"""diffing: status, allowlisted headers, JSON bodies with ignore paths, unordered arrays and learned noise."""

from __future__ import annotations

import json

from strangler_proxy.diffing import (
    HttpResponseData,
    NoiseRegistry,
    PathMatcher,
    generalise_path,
    raw_differences,
    response_diff,
)
from strangler_proxy.spec import DiffRules


def j(payload, status: int = 200, **headers: str) -> HttpResponseData:
    return HttpResponseData.from_pairs(
        status=status, header_pairs=[("Content-Type", "application/json"), *headers.items()],
        body=json.dumps(payload).encode(),
    )


def paths(result) -> set[str]:
    return {d.path for d in result.differences}


def test_identical_json_is_equal_even_with_different_key_order():
    a = HttpResponseData.from_pairs(status=200, header_pairs=[("content-type", "application/json")],
                                    body=b'{"a": 1, "b": [1, 2]}')
    b = HttpResponseData.from_pairs(status=200, header_pairs=[("Content-Type", "application/json; charset=utf-8")],
                                    body=b'{"b":[1,2],"a":1}')
    assert response_diff(expected=a, actual=b, rules=DiffRules(), route="/api/").equal


def test_status_value_missing_added_and_type_differences_are_reported():
    expected = j({"count": 2, "name": "x", "gone": 1, "price": "9.99"})
    actual = j({"count": 3, "name": "x", "new": 1, "price": 9.99}, status=201)
    kinds = {d.path: d.kind for d in raw_differences(expected, actual)}
    assert kinds == {"status": "changed", "$.count": "changed", "$.gone": "missing", "$.new": "added",
                     "$.price": "type"}


def test_int_and_float_of_same_value_are_equal_but_bool_is_not_int():
    assert raw_differences(j({"n": 1}), j({"n": 1.0})) == []
    assert [d.kind for d in raw_differences(j({"n": 1}), j({"n": True}))] == ["type"]


def test_ignore_paths_with_wildcard_index_and_subtree():
    rules = DiffRules(ignore=("$.results[*].updated_at", "$.meta"))
    expected = j({"results": [{"id": 1, "updated_at": "a"}, {"id": 2, "updated_at": "b"}], "meta": {"t": 1}})
    actual = j({"results": [{"id": 1, "updated_at": "c"}, {"id": 2, "updated_at": "d"}], "meta": {"t": 2}})
    assert response_diff(expected=expected, actual=actual, rules=rules, route="r").equal
    actual_changed = j({"results": [{"id": 1, "updated_at": "c"}, {"id": 3, "updated_at": "d"}], "meta": {}})
    result = response_diff(expected=expected, actual=actual_changed, rules=rules, route="r")
    assert paths(result) == {"$.results[1].id"}


def test_unordered_arrays_compare_as_multisets_but_ordered_ones_do_not():
    expected = j({"tags": ["a", "b", {"k": 1}], "ranking": [1, 2]})
    actual = j({"tags": [{"k": 1}, "b", "a"], "ranking": [2, 1]})
    result = response_diff(expected=expected, actual=actual, rules=DiffRules(unordered=("$.tags",)), route="r")
    assert paths(result) == {"$.ranking[0]", "$.ranking[1]"}
    # A multiset differs when an element count differs.
    result = response_diff(expected=j({"tags": ["a", "a"]}), actual=j({"tags": ["a"]}),
                           rules=DiffRules(unordered=("$.tags",)), route="r")
    assert not result.equal


def test_unordered_nested_arrays_with_ignored_fields_inside_elements():
    rules = DiffRules(unordered=("$.results",), ignore=("$.results[*].seen_at",))
    expected = j({"results": [{"id": 1, "seen_at": 5}, {"id": 2, "seen_at": 6}]})
    actual = j({"results": [{"id": 2, "seen_at": 9}, {"id": 1, "seen_at": 8}]})
    assert response_diff(expected=expected, actual=actual, rules=rules, route="r").equal


def test_only_allowlisted_headers_are_compared():
    expected = j({}, **{"Cache-Control": "max-age=60", "Date": "Mon", "X-Request-ID": "1"})
    actual = j({}, **{"Cache-Control": "no-store", "Date": "Tue", "X-Request-ID": "2"})
    result = response_diff(expected=expected, actual=actual, rules=DiffRules(headers=("cache-control",)), route="r")
    assert [(d.path, d.expected, d.actual) for d in result.differences] == [
        ("header:cache-control", "max-age=60", "no-store")]


def test_non_json_bodies_compare_bytes_and_json_vs_html_is_a_type_difference():
    html = HttpResponseData.from_pairs(status=200, header_pairs=[("Content-Type", "text/html")], body=b"<p>a</p>")
    html2 = HttpResponseData.from_pairs(status=200, header_pairs=[("Content-Type", "text/html")], body=b"<p>b</p>")
    assert raw_differences(html, html) == []
    assert [d.path for d in raw_differences(html, html2)] == ["body"]
    assert [d.kind for d in raw_differences(html, j({}))] == ["type"]


def test_noise_is_learned_from_two_monolith_answers_and_then_not_counted():
    noise = NoiseRegistry()
    rules = DiffRules()
    first = j({"items": [{"id": 1, "token": "x1"}, {"id": 2, "token": "z1"}], "generated": "t1", "total": 10})
    again = j({"items": [{"id": 1, "token": "x2"}, {"id": 2, "token": "z2"}], "generated": "t2", "total": 10})
    service = j({"items": [{"id": 1, "token": "y"}, {"id": 2, "token": "w"}], "generated": "t3", "total": 11})
    result = response_diff(expected=first, actual=service, rules=rules, route="/api/x/", noise=noise,
                           expected_again=again)
    assert paths(result) == {"$.total"}
    # The token differed in both items: one rule for every item of the list.
    assert set(result.noise_skipped) == {"$.items[*].token", "$.generated"}
    assert noise.paths("/api/x/") == {"$.items[*].token", "$.generated"}
    # Learned per route: another route still counts the same field.
    other = response_diff(expected=first, actual=service, rules=rules, route="/api/y/", noise=noise)
    assert "$.generated" in paths(other)
    # Learned noise persists for later comparisons on the same route without a second call.
    later = response_diff(expected=first, actual=service, rules=rules, route="/api/x/", noise=noise)
    assert paths(later) == {"$.total"}


def test_noise_learning_can_be_switched_off_per_route():
    noise = NoiseRegistry()
    rules = DiffRules(learn_noise=False)
    result = response_diff(expected=j({"t": 1}), actual=j({"t": 3}), rules=rules, route="r", noise=noise,
                           expected_again=j({"t": 2}))
    assert paths(result) == {"$.t"}
    assert noise.paths("r") == frozenset()


def test_status_flapping_on_the_monolith_is_not_learned_as_noise():
    noise = NoiseRegistry()
    response_diff(expected=j({}, status=200), actual=j({}, status=200), rules=DiffRules(), route="r", noise=noise,
                  expected_again=j({}, status=503))
    result = response_diff(expected=j({}, status=200), actual=j({}, status=500), rules=DiffRules(), route="r",
                           noise=noise)
    assert paths(result) == {"status"}


def test_path_helpers():
    assert generalise_path("$.a[12].b[0]") == "$.a[*].b[*]"
    matcher = PathMatcher(["$.a[*].b", "$.m.*"])
    assert matcher.matches("$.a[3].b")
    assert matcher.matches("$.a[*].b.c")  # below a rule's path
    assert not matcher.matches("$.a[3].bc")
    assert matcher.matches("$.m.anything")
    assert not matcher.matches("$.mm")
    assert not PathMatcher([])
