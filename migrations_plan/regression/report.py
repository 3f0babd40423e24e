"""Render a replay summary as one self-contained HTML page (inline CSS, no scripts, no external assets)."""

from __future__ import annotations

import datetime as dt
from html import escape

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2330;background:#fafbfc}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
.meta{color:#5b6475}.cards{display:flex;gap:1rem;margin:1rem 0;flex-wrap:wrap}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:.6rem 1rem;min-width:8rem}
.card b{display:block;font-size:1.5rem}
table{border-collapse:collapse;background:#fff;width:100%;margin-bottom:1rem}
th,td{border:1px solid #dde1e8;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#eef1f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b3261e;font-weight:600}.ok{color:#1e7b34;font-weight:600}
code,pre{font:12px/1.4 ui-monospace,monospace}pre{white-space:pre-wrap;word-break:break-all;margin:0;
max-height:16rem;overflow:auto;background:#f4f6f9;padding:.4rem}
details{margin:.4rem 0 1rem}summary{cursor:pointer}table.fields{width:auto;min-width:28rem}
h3 code{font-size:14px}
"""


def _rate(value: float | None) -> str:
    if value is None:
        return "–"
    css = "ok" if value == 0 else "bad"
    return f'<span class="{css}">{value * 100:.1f}%</span>'


def _example_html(example: dict, *, first: bool) -> str:
    title = escape(f"{example['method']} {example['path']}")
    opened = " open" if first else ""  # the first pair of each endpoint is shown unfolded
    if "error" in example:
        return f"<details{opened}><summary>{title}: error</summary><pre>{escape(example['error'])}</pre></details>"
    fields = "".join(f"<li><code>{escape(d['text'])}</code></li>" for d in example["differences"])
    mono, svc = example["monolith"], example["service"]
    return (
        f"<details{opened}><summary>{title}</summary><ul>{fields}</ul>"
        f"<table><tr><th>monolith ({mono['status']})</th><th>service ({svc['status']})</th></tr>"
        f"<tr><td><pre>{escape(mono['body'])}</pre></td><td><pre>{escape(svc['body'])}</pre></td></tr></table>"
        "</details>"
    )


def report_html(summary: dict) -> str:
    started = dt.datetime.fromtimestamp(summary["started_at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    skipped = sum(summary["skipped_unsafe"].values())
    rows = []
    for e in summary["endpoints"]:
        worst = ", ".join(f"{escape(f['path'])} ({f['count']})" for f in e["worst_fields"][:3]) or "–"
        rows.append(
            f"<tr><td><code>{escape(e['endpoint'])}</code></td><td><code>{escape(e['route'])}</code></td>"
            f"<td class=num>{e['compared']}</td><td class=num>{e['differing']}</td>"
            f"<td class=num>{_rate(e['diff_rate'])}</td><td class=num>{e['errors']}</td><td>{worst}</td></tr>"
        )
    details = []
    for e in summary["endpoints"]:
        if not e["examples"]:
            continue
        fields = "".join(f"<tr><td><code>{escape(f['path'])}</code></td><td class=num>{f['count']}</td></tr>"
                         for f in e["worst_fields"])
        details.append(
            f"<h3><code>{escape(e['endpoint'])}</code></h3>"
            + (f'<table class="fields"><tr><th>field</th><th>differing exchanges</th></tr>{fields}</table>'
               if fields else "")
            + "".join(_example_html(x, first=i == 0) for i, x in enumerate(e["examples"]))
        )
    noise = "".join(
        f"<tr><td><code>{escape(rule['route'])}</code></td><td><code>{escape(rule['path'])}</code></td>"
        f"<td>{escape(', '.join(rule['kinds']))}</td><td class=num>{rule['evidence']}</td>"
        f"<td class=num>{rule['suppressed']}</td><td>{'yes' if rule['active'] else 'no'}</td></tr>"
        for rule in summary["noise_rules"])
    noise = (
        '<table id="noise"><tr><th>route</th><th>field</th><th>kinds</th><th>evidence (monolith pairs)</th>'
        f"<th>exchanges suppressed</th><th>active</th></tr>{noise}</table>" if noise else "<p>none</p>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Side-by-side replay report</title><style>{_CSS}</style></head>
<body>
<h1>Side-by-side replay report</h1>
<p class="meta">{escape(started)} · monolith <code>{escape(summary['monolith'])}</code> · service
<code>{escape(summary['service'])}</code> · routes <code>{escape(summary['routes_file'])}</code></p>
<div class="cards">
<div class="card">requests<b id="requests">{summary['requests']}</b></div>
<div class="card">compared<b id="compared">{summary['compared']}</b></div>
<div class="card">differing<b id="differing">{summary['differing']}</b></div>
<div class="card">diff rate<b id="diff-rate">{_rate(summary['diff_rate'])}</b></div>
<div class="card">errors<b id="errors">{summary['errors']}</b></div>
<div class="card">skipped (unsafe)<b id="skipped">{skipped}</b></div>
</div>
<h2>Endpoints</h2>
<table id="endpoints"><tr><th>endpoint</th><th>route</th><th>compared</th><th>differing</th><th>diff rate</th>
<th>errors</th><th>worst fields</th></tr>
{''.join(rows)}
</table>
<h2>Learned noise (ignored)</h2>{noise}
<h2>Differences</h2>
{''.join(details) or '<p class="ok">No differences.</p>'}
</body></html>
"""
