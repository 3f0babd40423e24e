"""Plan state behind PlanStore: the file store's compare-and-set, and the store chosen by the environment."""

from __future__ import annotations

import pytest

from migrations_plan.errors import PlanConflict, PlanError
from migrations_plan.state import FileStore, PlanState, plan_store, state_load, state_save


def test_a_save_of_a_stale_read_is_refused(tmp_path):
    store = FileStore(tmp_path)
    first = PlanState(plan="p", started_at=1.0)
    store.compare_and_set(first)
    assert first.revision == 1 and store.get("p").revision == 1
    mine, theirs = store.get("p"), store.get("p")
    theirs.frozen = {"at": 2.0, "by": "bob", "reason": "incident"}
    store.compare_and_set(theirs)
    mine.started_at = 5.0
    with pytest.raises(PlanConflict, match=r"plan p changed since it was read \(revision 2, not 1\)"):
        store.compare_and_set(mine)
    assert store.get("p").frozen["by"] == "bob" and store.get("p").started_at == 1.0  # bob's change kept
    with pytest.raises(PlanConflict, match="changed since it was read"):
        store.compare_and_set(PlanState(plan="p", started_at=9.0))  # a fresh state over an existing one


def test_the_store_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("STRANGLER_PLAN_STATE_DIR", raising=False)
    monkeypatch.setenv("STRANGLER_VAR_DIR", str(tmp_path / "var"))
    assert plan_store().directory == tmp_path / "var" / "plans"
    monkeypatch.setenv("STRANGLER_PLAN_STORE", f"file://{tmp_path}/elsewhere")
    state_save(state=PlanState(plan="p", started_at=1.0))
    assert (tmp_path / "elsewhere" / "p.json").exists() and state_load(plan="p").revision == 1
    monkeypatch.setenv("STRANGLER_PLAN_STORE", str(tmp_path / "plain"))
    assert plan_store().directory == tmp_path / "plain"
    monkeypatch.setenv("STRANGLER_PLAN_STORE", "redis://127.0.0.1/0")
    with pytest.raises(PlanError, match="unknown plan store 'redis'"):
        plan_store()


def test_the_lock_excludes_a_second_holder(tmp_path):
    store = FileStore(tmp_path)
    with store.lock(wait_seconds=0), pytest.raises(PlanConflict, match="another plan command is running \\(pid "):
        with FileStore(tmp_path).lock(wait_seconds=0.2):
            pass
    with store.lock(wait_seconds=0):  # released
        pass
