"""noise: learned per concrete leaf, generalised over items only on evidence, never a list; expiry; the file."""

from __future__ import annotations

import json

from strangler_proxy.diffing import HttpResponseData, raw_differences, response_diff
from strangler_proxy.noise import NoiseRegistry, noise_candidates
from strangler_proxy.spec import DiffRules


def j(payload, status: int = 200) -> HttpResponseData:
    return HttpResponseData.from_pairs(status=status, header_pairs=[("Content-Type", "application/json")],
                                       body=json.dumps(payload).encode())


def product(pid: int, price: str, updated: str = "t0") -> dict:
    return {"id": pid, "name": f"p{pid}", "price": price, "updated_at": updated}


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_list_that_grew_between_the_monolith_calls_still_reports_a_later_price_difference():
    noise = NoiseRegistry()
    rules = DiffRules()
    listing = [product(1, "10.00"), product(2, "20.00")]
    # A product was inserted between the two monolith calls: every index after it holds another record.
    grown = [product(3, "30.00"), *listing]
    first = response_diff(expected=j({"count": 2, "results": listing}), actual=j({"count": 2, "results": listing}),
                          rules=rules, route="/api/products/", noise=noise,
                          expected_again=j({"count": 3, "results": grown}))
    assert first.equal
    assert noise.paths("/api/products/") == {"$.count"}  # a leaf that changed in place; nothing in the list
    service = [product(1, "12.00"), product(2, "20.00")]
    later = response_diff(expected=j({"count": 2, "results": listing}), actual=j({"count": 2, "results": service}),
                          rules=rules, route="/api/products/", noise=noise)
    assert [(d.path, d.expected, d.actual) for d in later.differences] == [("$.results[0].price", "10.00", "12.00")]
    assert later.noise_skipped == () and later.suppressed == ()


def test_items_that_became_other_records_teach_nothing_even_at_the_same_length():
    before = j({"results": [product(1, "10.00"), product(2, "20.00")]})
    after = j({"results": [product(2, "20.00"), product(1, "10.00")]})  # reordered by a concurrent write
    assert noise_candidates(raw_differences(before, after)) == []


def test_a_leaf_is_generalised_over_items_only_when_it_differs_in_several():
    noise = NoiseRegistry()
    route = "/api/products/"
    noise.learn(route, raw_differences(j({"results": [product(1, "1", "a"), product(2, "2", "a")]}),
                                       j({"results": [product(1, "1", "b"), product(2, "2", "a")]})))
    assert noise.paths(route) == {"$.results[0].updated_at"}
    # The concrete rule covers its own item only.
    probe = [product(1, "1", "x"), product(2, "2", "y")]
    result = response_diff(expected=j({"results": [product(1, "1"), product(2, "2")]}), actual=j({"results": probe}),
                           rules=DiffRules(), route=route, noise=noise)
    assert [d.path for d in result.differences] == ["$.results[1].updated_at"]
    assert result.noise_skipped == ("$.results[0].updated_at",)
    noise.learn(route, raw_differences(j({"results": [product(1, "1", "a"), product(2, "2", "a")]}),
                                       j({"results": [product(1, "1", "a"), product(2, "2", "c")]})))
    assert noise.paths(route) == {"$.results[*].updated_at"}
    [rule] = noise.rules()
    assert (rule["path"], rule["evidence"], rule["suppressed"], rule["kinds"]) == (
        "$.results[*].updated_at", 2, 1, ["changed"])
    result = response_diff(expected=j({"results": [product(1, "1"), product(2, "2")]}), actual=j({"results": probe}),
                           rules=DiffRules(), route=route, noise=noise)
    assert result.equal and [d.path for d in result.suppressed] == ["$.results[0].updated_at",
                                                                     "$.results[1].updated_at"]
    assert noise.rules()[0]["suppressed"] == 2  # comparisons, not fields


def test_a_rule_covers_neither_a_subtree_nor_a_field_the_service_drops():
    noise = NoiseRegistry()
    noise.learn("r", raw_differences(j({"meta": {"ts": 1}, "nested": {"a": 1}}), j({"meta": {"ts": 2}, "nested": []})))
    assert noise.paths("r") == {"$.meta.ts"}  # `nested` changed type to a list: a subtree, not learned
    result = response_diff(expected=j({"meta": {"ts": 1}, "nested": {"a": 1}}), actual=j({"meta": {}, "nested": {}}),
                           rules=DiffRules(), route="r", noise=noise)
    assert {(d.path, d.kind) for d in result.differences} == {("$.meta.ts", "missing"), ("$.nested.a", "missing")}


def test_rules_expire_when_not_seen_again_and_seeing_them_renews_them():
    clock = Clock()
    noise = NoiseRegistry(expiry=60, clock=clock)
    learn = raw_differences(j({"ts": 1}), j({"ts": 2}))
    noise.learn("r", learn)
    clock.now += 50
    noise.learn("r", learn)
    clock.now += 50  # 100 s after the first sighting, 50 after the last
    assert noise.paths("r") == {"$.ts"} and noise.rules()[0]["evidence"] == 2
    clock.now += 11
    assert noise.paths("r") == frozenset()
    result = response_diff(expected=j({"ts": 1}), actual=j({"ts": 5}), rules=DiffRules(), route="r", noise=noise)
    assert [d.path for d in result.differences] == ["$.ts"]


def test_min_evidence_holds_a_rule_back_until_it_is_seen_that_often():
    noise = NoiseRegistry(min_evidence=2)
    learn = raw_differences(j({"ts": 1}), j({"ts": 2}))
    noise.learn("r", learn)
    assert noise.paths("r") == frozenset() and noise.rules()[0]["active"] is False
    noise.learn("r", learn)
    assert noise.paths("r") == {"$.ts"}


def test_learned_noise_is_saved_atomically_and_loaded_by_the_next_process(tmp_path):
    path = tmp_path / "proxy" / "noise.json"
    clock = Clock()
    noise = NoiseRegistry(path=path, clock=clock, save_interval=3600)
    noise.learn("/api/", raw_differences(j({"ts": 1}), j({"ts": 2})))
    assert json.loads(path.read_text())["routes"]["/api/"][0]["path"] == "$.ts"  # a new rule is saved at once
    response_diff(expected=j({"ts": 1}), actual=j({"ts": 3}), rules=DiffRules(), route="/api/", noise=noise)
    noise.flush()
    assert [p.name for p in path.parent.iterdir()] == ["noise.json"]  # no temporary file left behind
    again = NoiseRegistry(path=path, clock=clock)
    [rule] = again.rules()
    assert (rule["route"], rule["path"], rule["evidence"], rule["suppressed"]) == ("/api/", "$.ts", 1, 1)
    # Expired rules are not loaded.
    clock.now += 10**9
    assert NoiseRegistry(path=path, clock=clock, expiry=60).rules() == []


def test_an_unreadable_noise_file_starts_empty_and_is_replaced(tmp_path, caplog):
    path = tmp_path / "noise.json"
    path.write_text("{not json")
    noise = NoiseRegistry(path=path)
    assert noise.rules() == [] and "unreadable" in caplog.text
    noise.learn("r", raw_differences(j({"ts": 1}), j({"ts": 2})))
    assert json.loads(path.read_text())["version"] == 1
