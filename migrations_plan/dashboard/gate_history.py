"""Each plan's gate values over the current step's window, as the dashboard saw them snapshot after snapshot.

Gates are computed from whatever source the plan names (one proxy, replicas, Prometheus: gate_sources.py);
this keeps what each snapshot computed, per plan and gate, from the moment the current step began (a new
step, or a rollback, starts a new window), so the page can plot a canary going wrong. Bounded: at most
``max_points`` per gate, the oldest dropped first.
"""

from __future__ import annotations

import threading

DEFAULT_MAX_POINTS = 360  # an hour at the default 10 s refresh


class GateHistory:
    def __init__(self, *, max_points: int = DEFAULT_MAX_POINTS):
        self.max_points = max_points
        self._lock = threading.Lock()
        # plan name -> (the step the window belongs to, {(gate set, kind): [[t, value], ...]})
        self._windows: dict[str, tuple[tuple, dict[tuple[str, str], list[list]]]] = {}

    def record(self, snapshot: dict) -> dict:
        """Add this snapshot's gate values, and put each gate's points so far under ``history``; returns it."""
        taken = snapshot.get("taken_at")
        with self._lock:
            for plan in snapshot.get("plans", ()):
                if "error" in plan:
                    continue
                # A plan not started yet has no saved start time (entered_at is "now" on every read)
                entered = (plan["position"], plan["entered_at"] if plan["position"] else None)
                window = self._windows.get(plan["plan"])
                if window is None or window[0] != entered:
                    window = self._windows[plan["plan"]] = (entered, {})
                for gate_set in ("gates", "watch"):
                    for gate in plan[gate_set]:
                        points = window[1].setdefault((gate_set, gate["kind"]), [])
                        points.append([taken, gate["value"]])
                        del points[:-self.max_points]
                        gate["history"] = [list(p) for p in points]
        return snapshot
