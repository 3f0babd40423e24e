"""The dashboard page: plain HTML and inline CSS, refreshed by a meta tag (no scripts, no external assets).

Numbers carry ``data-*`` attributes naming what they are, so a browser test can read them back exactly.
"""

from __future__ import annotations

import datetime as dt
from html import escape

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem 2rem;color:#1d2330;background:#f6f7f9}
h1{font-size:1.35rem;margin:0}h2{font-size:1.05rem;margin:1.4rem 0 .4rem}
.meta{color:#5b6475;margin:.2rem 0 1rem}
table{border-collapse:collapse;background:#fff;margin-bottom:.6rem;min-width:50%}
th,td{border:1px solid #dde1e8;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.err{color:#b3261e}.ok{color:#1e7b34}.warn{color:#9a6700}.muted{color:#8a93a3}
.mode{display:inline-block;padding:0 .45rem;border-radius:3px;background:#e6ebf3;font-size:12px}
.mode-service{background:#d5f0dc}.mode-canary{background:#fff0c2}.mode-shadow{background:#e4dcfa}
.bar{display:inline-block;height:.6rem;background:#4b74d0;vertical-align:middle;margin-right:.3rem}
.plan{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:.6rem 1rem;margin-bottom:1rem}
.steps{display:flex;flex-wrap:wrap;gap:.3rem;margin:.4rem 0;padding:0;list-style:none}
.steps li{padding:.1rem .5rem;border-radius:3px;background:#eef1f5;font-size:12px}
.steps li.done{background:#d5f0dc}.steps li.current{outline:2px solid #1e7b34}
.status-pass{color:#1e7b34;font-weight:600}.status-fail{color:#b3261e;font-weight:600}
.status-waiting{color:#9a6700;font-weight:600}.status-unknown{color:#8a93a3;font-weight:600}
code{font:12px ui-monospace,monospace}.last{text-align:left;font-size:12px;max-width:22rem}
"""


def _num(value, *, attrs: str = "", pct: bool = False, digits: int = 3, alert: bool = False) -> str:
    if value is None:
        return f'<td class="num muted" {attrs}>–</td>'
    shown = f"{value * 100:.1f}%" if pct else (f"{value:g}" if isinstance(value, float) else str(value))
    if isinstance(value, float) and not pct:
        shown = f"{round(value, digits):g}"
    return f'<td class="num{" err" if alert else ""}" {attrs}>{shown}</td>'


def _a(**pairs) -> str:
    return " ".join(f'data-{k.replace("_", "-")}="{escape(str(v))}"' for k, v in pairs.items())


def _routes(snapshot: dict) -> str:
    rows = []
    for r in snapshot["routes"]:
        methods = ", ".join(r["methods"]) if r["methods"] else "all"
        rows.append(
            f'<tr {_a(route=r["route"])}><td><code>{escape(r["route"])}</code>'
            f'{" (exact)" if r["match"] == "exact" else ""}</td><td>{escape(methods)}</td>'
            f'<td><span class="mode mode-{escape(r["mode"])}" {_a(field="mode")}>{escape(r["mode"])}</span></td>'
            f'<td>{escape(r["service"] or "–")}</td>{_num(r["weight"], attrs=_a(field="weight"))}'
            f'{_num(r["shadow_sample"], attrs=_a(field="shadow-sample"))}<td>{"yes" if r["fallback"] else "no"}</td>'
            f'<td class="num">{r["line"]}</td></tr>'
        )
    return ("<table id=routes><tr><th>route</th><th>methods</th><th>mode</th><th>service</th><th>canary %</th>"
            "<th>shadow sample</th><th>fallback</th><th>line</th></tr>" + "".join(rows) + "</table>")


def _traffic(proxy: dict) -> str:
    if "error" in proxy:
        return f'<p class="err" id="proxy-error">{escape(proxy["error"])}</p>'
    rows = []
    for t in proxy["traffic"]:
        split = []
        for u in t["upstreams"]:
            width = int(round((u["share"] or 0) * 80))
            split.append(
                f'<div {_a(upstream=u["upstream"])}><span class="bar" style="width:{width}px"></span>'
                f'<b>{escape(u["upstream"])}</b> <span {_a(field="requests")}>{u["requests"]}</span> '
                f'(<span {_a(field="share")}>{(u["share"] or 0) * 100:.1f}%</span>), errors '
                f'<span {_a(field="errors")}>{u["errors"]}</span></div>'
            )
        fields = ", ".join(f"{escape(p)} ({n})" for p, n in list(t.get("top_fields", {}).items())[:3])
        diff_css = "muted" if t["diff_rate"] is None else ("ok" if t["diff_rate"] == 0 else "err")
        diff_shown = "–" if t["diff_rate"] is None else f"{t['diff_rate'] * 100:.1f}%"
        rows.append(
            f'<tr {_a(route=t["route"])}><td><code>{escape(t["route"])}</code></td>'
            f'{_num(t["requests"], attrs=_a(field="requests"))}<td>{"".join(split) or "–"}</td>'
            f'{_num(t["error_rate"], attrs=_a(field="error-rate"), pct=True, alert=bool(t["error_rate"]))}'
            f'{_num(t["shadow_comparisons"], attrs=_a(field="shadow-comparisons"))}'
            f'{_num(t["shadow_diffs"], attrs=_a(field="shadow-diffs"))}'
            f'<td class="num {diff_css}" {_a(field="diff-rate")}>'
            f'{diff_shown}</td>'
            f'{_num(t["fallbacks"], attrs=_a(field="fallbacks"))}<td>{fields or "–"}</td></tr>'
        )
    breakers = ", ".join(
        f'<span {_a(breaker=name)} class="{"ok" if state == "closed" else "err"}">{escape(name)}: {state}</span>'
        for name, state in sorted(proxy["breakers"].items())) or "none tripped yet"
    return ("<table id=traffic><tr><th>route</th><th>requests</th><th>split by upstream</th><th>error rate</th>"
            "<th>shadow compared</th><th>differing</th><th>diff rate</th><th>fallbacks</th><th>top diff fields</th>"
            "</tr>" + "".join(rows) + "</table>"
            f'<p class="meta">Since the proxy started. Circuit breakers: {breakers}. '
            f'Refused by the proxy: <span id="rejections">{proxy["rejections"]}</span>.</p>')


def _data_plane(rows: list[dict]) -> str:
    if not rows:
        return '<p class="muted">No sync projects configured (--sync-project, --metrics).</p>'
    out = []
    for p in rows:
        sources = "<br>".join(f'<code class="muted">{escape(s)}</code>' for s in p["sources"])
        errors = "".join(f'<div class="err last" {_a(field="error")}>{escape(e)}</div>' for e in p["errors"])
        head = f'<tr {_a(project=p["project"])}><td><b>{escape(p["project"])}</b><br>{sources}{errors}</td>'
        dead = p.get("dead_letters")
        last = f'<div class="muted last">{escape(p["last_dead_letter"])}</div>' if p.get("last_dead_letter") else ""
        out.append(
            head + _num(p.get("backlog"), attrs=_a(field="backlog"))
            + _num(p.get("oldest_pending_age_seconds"), attrs=_a(field="relay-lag"), digits=1)
            + _num(p.get("outbox_dead"), attrs=_a(field="outbox-dead"))
            + (f'<td class="num {"err" if dead else ""}" {_a(field="dead-letters")}>{dead}{last}</td>'
               if dead is not None else _num(None, attrs=_a(field="dead-letters")))
            + _num(p.get("end_to_end_lag_p99_seconds"), attrs=_a(field="lag-p99"))
            + _num(p.get("http_error_rate"), attrs=_a(field="http-error-rate"), pct=True) + "</tr>"
        )
    return ("<table id=data-plane><tr><th>project</th><th>outbox backlog</th><th>relay lag (s)</th>"
            "<th>dead outbox rows</th><th>dead letters</th><th>end-to-end lag p99 (s)</th><th>HTTP 5xx</th></tr>"
            + "".join(out) + "</table>")


_SPARK_W, _SPARK_H = 160, 32


def _sparkline(points: list[list], threshold: float) -> str:
    """The gate's values over the step's window as an inline SVG: a line per run of known values (unknown ones
    leave a gap), the threshold dashed; the y axis spans 0, the values and the threshold."""
    known = [(t, v) for t, v in points if v is not None]
    if not known:
        return f'<td class="muted" {_a(field="sparkline", points=0)}>no data yet</td>'
    t0, t1 = points[0][0], points[-1][0]
    low = min(0.0, threshold, *(v for _, v in known))
    high = max(threshold, *(v for _, v in known))
    span_t, span_v = (t1 - t0) or 1.0, (high - low) or 1.0

    def xy(t: float, v: float) -> str:
        return f"{(t - t0) / span_t * (_SPARK_W - 4) + 2:.1f},{_SPARK_H - 2 - (v - low) / span_v * (_SPARK_H - 4):.1f}"

    runs: list[list[str]] = [[]]
    for t, v in points:
        if v is None:
            runs.append([])
        else:
            runs[-1].append(xy(t, v))
    runs = [r for r in runs if r]
    lines = "".join(
        f'<polyline fill="none" stroke="#4b74d0" stroke-width="1.5" points="{" ".join(r)}"/>' if len(r) > 1
        else f'<circle r="1.8" fill="#4b74d0" cx="{r[0].split(",")[0]}" cy="{r[0].split(",")[1]}"/>' for r in runs)
    y = xy(t0, threshold).split(",")[1]
    return (f'<td {_a(field="sparkline", points=len(known))}><svg width="{_SPARK_W}" height="{_SPARK_H}" '
            f'viewBox="0 0 {_SPARK_W} {_SPARK_H}" role="img" aria-label="values over this step">'
            f'<line x1="0" x2="{_SPARK_W}" y1="{y}" y2="{y}" stroke="#b3261e" stroke-dasharray="3 2"/>'
            f"{lines}</svg></td>")


def _gates(title: str, gates: list[dict], kind: str) -> str:
    if not gates:
        return ""
    rows = "".join(
        f'<tr {_a(gate=g["kind"], gate_set=kind)}><td><code>{escape(g["kind"])}</code></td>'
        f'<td class="status-{escape(g["status"])}" {_a(field="status")}>{escape(g["status"])}</td>'
        f'{_num(g["value"], attrs=_a(field="value"), digits=4)}<td class="num">{g["threshold"]:g}</td>'
        f'{_sparkline(g.get("history") or [], g["threshold"])}'
        f'<td>{escape(g.get("detail") or "")}</td></tr>' for g in gates)
    return (f"<h4>{escape(title)}</h4><table><tr><th>gate</th><th>status</th><th>value</th><th>threshold</th>"
            f"<th>over this step</th><th>detail</th></tr>{rows}</table>")


def _plans(plans: list[dict]) -> str:
    if not plans:
        return '<p class="muted">No plans.</p>'
    out = []
    for p in plans:
        if "error" in p:
            out.append(f'<div class="plan" {_a(plan=p["plan"])}><b>{escape(p["plan"])}</b> '
                       f'<span class="err">{escape(p["error"])}</span></div>')
            continue
        steps = "".join(
            f'<li class="{"done" if s["applied"] else ""}{" current" if s["name"] == p["current"] else ""}">'
            f'{escape(s["name"])}</li>' for s in p["steps"])
        state = "finished" if p["finished"] else ("frozen" if p["frozen"] else "in progress")
        out.append(
            f'<div class="plan" {_a(plan=p["plan"])}><b>{escape(p["plan"])}</b> — '
            f'step <span {_a(field="position")}>{p["position"]}</span>/{len(p["steps"])}, current '
            f'<code {_a(field="current")}>{escape(p["current"] or "(not started)")}</code>, next '
            f'<code {_a(field="next")}>{escape(p["next"] or "–")}</code> '
            f'<span class="{"warn" if p["frozen"] else "muted"}" {_a(field="state")}>{state}</span>'
            f'<ul class="steps">{steps}</ul>'
            + _gates(f"gates of the next step ({p['next']})", p["gates"], "next")
            + _gates("watched while this step runs", p["watch"], "watch") + "</div>"
        )
    return "".join(out)


def dashboard_html(snapshot: dict, *, refresh_seconds: int) -> str:
    taken = dt.datetime.fromtimestamp(snapshot["taken_at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    head = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="{int(refresh_seconds)}">'
            f"<title>Strangler migration dashboard</title><style>{_CSS}</style></head><body>"
            f"<h1>Strangler migration dashboard</h1>")
    if "error" in snapshot:
        return head + f'<p class="err" id="error">{escape(snapshot["error"])}</p></body></html>'
    return (
        head + f'<p class="meta">Taken <span id="taken-at">{taken}</span> in {snapshot["seconds"]:g} s · '
        f'route file <code>{escape(snapshot["routes_file"])}</code> ({escape(snapshot["routes_digest"])}) · '
        f"refreshes every {int(refresh_seconds)} s</p>"
        "<h2>Routes</h2>" + _routes(snapshot)
        + "<h2>Traffic, errors and shadow diffs</h2>" + _traffic(snapshot["proxy"])
        + "<h2>Data plane</h2>" + _data_plane(snapshot["data_plane"])
        + "<h2>Plans</h2>" + _plans(snapshot["plans"]) + "</body></html>"
    )
