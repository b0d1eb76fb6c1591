"""The board packet: one self-contained HTML page and a Markdown summary.

Pure rendering of JSON-ready results (backtest metrics, the version diff, a sweep, a
history replay, the governance check, the PIA / data-flow diff) into files the board reads
offline: every plot is inline SVG drawn here, nothing is fetched (no CDN, no fonts, no
scripts), so the page renders the same in an air-gapped review room as in CI.

``governance_diff`` compares two policy folders' PIA and data-flow manifests (elements
added or removed, retention changes, pattern change, escalation) for the summary.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from governance.loading import load_governance
from governance.report import summarize

__all__ = ["governance_diff", "render_board_packet"]

ACTIONS = ("log", "warn", "step_up", "review", "block")
COLORS = {
    "log": "#8fb996",
    "warn": "#f2d06b",
    "step_up": "#f0a35e",
    "review": "#d9694a",
    "block": "#8c2d2d",
}
NEW, OLD = "#2b6cb0", "#a0aec0"


# --- PIA / data-flow diff ------------------------------------------------------------------


def governance_diff(old_dir: Path, new_dir: Path) -> dict[str, Any]:
    """What changed in the privacy paperwork between two versions of a policy folder."""
    old_pia, old_df, _ = load_governance(Path(old_dir))
    new_pia, new_df, _ = load_governance(Path(new_dir))
    old_el = {e.name: e for e in (old_df.elements if old_df else [])}
    new_el = {e.name: e for e in (new_df.elements if new_df else [])}
    retention = [
        {"element": n, "old": old_el[n].retention_days, "new": new_el[n].retention_days}
        for n in sorted(set(old_el) & set(new_el))
        if old_el[n].retention_days != new_el[n].retention_days
    ]
    fields = [
        {
            "element": n,
            "added": sorted(set(new_el[n].fields) - set(old_el[n].fields)),
            "removed": sorted(set(old_el[n].fields) - set(new_el[n].fields)),
        }
        for n in sorted(set(old_el) & set(new_el))
        if set(old_el[n].fields) != set(new_el[n].fields)
    ]
    s_old, s_new = summarize(old_pia, old_df), summarize(new_pia, new_df)
    changed = {
        k: {"old": s_old[k], "new": s_new[k]}
        for k in s_new
        if k not in ("retention_days",) and s_old.get(k) != s_new[k]
    }
    return {
        "elements_added": sorted(set(new_el) - set(old_el)),
        "elements_removed": sorted(set(old_el) - set(new_el)),
        "retention_changes": retention,
        "field_changes": fields,
        "pattern": {"old": s_old["pattern"], "new": s_new["pattern"]},
        "summary_changes": changed,
    }


# --- SVG ------------------------------------------------------------------------------------


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _svg(name: str, width: int, height: int, body: list[str], title: str) -> str:
    return (
        f'<svg data-plot="{_e(name)}" role="img" aria-label="{_e(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" style="background:#fff">'
        f"<title>{_e(title)}</title>{''.join(body)}</svg>"
    )


def _text(
    x: float, y: float, s: Any, size: int = 11, anchor: str = "start", fill: str = "#222"
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'font-family="sans-serif" fill="{fill}">{_e(s)}</text>'
    )


def action_mix_plot(rows: list[tuple[str, dict[str, float | None]]]) -> str:
    """Stacked horizontal bars: one per version, the share of each action."""
    w, bar, left = 640, 26, 150
    h = 40 + len(rows) * (bar + 12) + 30
    body = [_text(10, 18, "Action mix", 13)]
    for i, (label, mix) in enumerate(rows):
        y = 30 + i * (bar + 12)
        body.append(_text(10, y + bar / 2 + 4, label))
        x = float(left)
        for a in ACTIONS:
            frac = mix.get(a) or 0.0
            width = frac * (w - left - 20)
            if width > 0:
                body.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{bar}" '
                    f'fill="{COLORS[a]}"><title>{a} {frac:.1%}</title></rect>'
                )
            x += width
    y = h - 14
    for j, a in enumerate(ACTIONS):
        body.append(
            f'<rect x="{left + j * 90}" y="{y - 9}" width="10" height="10" fill="{COLORS[a]}"/>'
        )
        body.append(_text(left + j * 90 + 14, y, a))
    return _svg("action_mix", w, h, body, "Action mix per version")


def grouped_bars(
    name: str,
    title: str,
    labels: list[str],
    series: list[tuple[str, str, list[float | None]]],
    fmt: str = "{:.1%}",
) -> str:
    """Vertical grouped bars per label (scenario), one colour per series (version/metric)."""
    w, h, top, bottom, left = 760, 300, 30, 90, 50
    vals = [v for _, _, vs in series for v in vs if v is not None]
    vmax = max([*vals, 1e-09])
    group = (w - left - 20) / max(1, len(labels))
    bw = max(2.0, group * 0.8 / max(1, len(series)))
    body = [_text(10, 18, title, 13)]
    body.append(
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - 10}" y2="{h - bottom}" stroke="#444"/>'
    )
    body.append(_text(left - 4, top + 4, fmt.format(vmax), 10, "end"))
    body.append(_text(left - 4, h - bottom, fmt.format(0), 10, "end"))
    for i, lab in enumerate(labels):
        gx = left + i * group + group * 0.1
        for j, (_, color, vs) in enumerate(series):
            v = vs[i]
            if v is None:
                continue
            bh = (h - top - bottom) * (v / vmax)
            body.append(
                f'<rect x="{gx + j * bw:.1f}" y="{h - bottom - bh:.1f}" width="{bw - 1:.1f}" '
                f'height="{max(bh, 0.5):.1f}" fill="{color}"><title>{_e(lab)}: {fmt.format(v)}</title></rect>'
            )
        cx = gx + group * 0.4
        body.append(
            f'<text x="{cx:.1f}" y="{h - bottom + 12}" font-size="10" font-family="sans-serif" '
            f'transform="rotate(35 {cx:.1f} {h - bottom + 12})">{_e(lab)}</text>'
        )
    for j, (name_, color, _) in enumerate(series):
        body.append(f'<rect x="{w - 190}" y="{8 + j * 14}" width="10" height="10" fill="{color}"/>')
        body.append(_text(w - 176, 17 + j * 14, name_, 10))
    return _svg(name, w, h, body, title)


def sweep_plot(sweep: dict[str, Any]) -> str:
    """False-positive rate (x) against catch rate (y), points labelled by value, current marked."""
    pts = [
        p
        for p in sweep["points"]
        if "invalid" not in p
        and p["false_positive_rate"] is not None
        and p["catch_rate"] is not None
    ]
    w, h, m = 640, 360, 50
    xs = [p["false_positive_rate"] for p in pts] or [0.0]
    xmax = max(max(xs), 1e-6) * 1.1
    body = [_text(10, 18, f"Sweep of {sweep['parameter']}: false positives vs catch rate", 13)]
    body.append(f'<line x1="{m}" y1="{h - m}" x2="{w - 20}" y2="{h - m}" stroke="#444"/>')
    body.append(f'<line x1="{m}" y1="{h - m}" x2="{m}" y2="30" stroke="#444"/>')
    body.append(_text((w + m) / 2, h - 12, "false-positive rate (step_up or harder)", 11, "middle"))
    body.append(_text(m - 6, 36, "100%", 10, "end"))
    body.append(_text(m + 2, h - m + 14, "0", 10))
    body.append(_text(w - 20, h - m + 14, f"{xmax:.1%}", 10, "end"))

    def xy(p: dict[str, Any]) -> tuple[float, float]:
        return (
            m + (w - m - 20) * p["false_positive_rate"] / xmax,
            h - m - (h - m - 30) * p["catch_rate"],
        )

    if len(pts) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in map(xy, pts))
        body.append(f'<polyline points="{path}" fill="none" stroke="{NEW}" stroke-width="2"/>')
    for p in pts:
        x, y = xy(p)
        current = p["value"] == sweep.get("current")
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{7 if current else 4}" '
            f'fill="{"#c53030" if current else NEW}"><title>{p["value"]}</title></circle>'
        )
        body.append(_text(x + 6, y - 6, f"{p['value']:g}{' (current)' if current else ''}", 10))
    return _svg("sweep", w, h, body, "Threshold sweep")


def flow_plot(flow: dict[str, dict[str, int]]) -> str:
    """Action → action: a grid of counts (rows: old action, columns: new), shaded by count."""
    cell, left, top = 70, 90, 50
    w, h = left + cell * 5 + 20, top + cell * 5 + 20
    peak = max([n for row in flow.values() for n in row.values()] + [1])
    body = [_text(10, 18, "Action flow: old (rows) → new (columns)", 13)]
    for j, b in enumerate(ACTIONS):
        body.append(_text(left + j * cell + cell / 2, top - 8, b, 10, "middle"))
    for i, a in enumerate(ACTIONS):
        body.append(_text(left - 6, top + i * cell + cell / 2 + 4, a, 10, "end"))
        for j, b in enumerate(ACTIONS):
            n = flow.get(a, {}).get(b, 0)
            shade = 0.08 + 0.92 * (n / peak) if n else 0.0
            color = NEW if i != j else "#718096"
            body.append(
                f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell - 2}" '
                f'height="{cell - 2}" fill="{color}" fill-opacity="{shade:.2f}" '
                f'stroke="#cbd5e0"/>'
            )
            body.append(
                _text(
                    left + j * cell + cell / 2,
                    top + i * cell + cell / 2 + 4,
                    f"{n:,}",
                    11,
                    "middle",
                    "#000",
                )
            )
    return _svg("flow", w, h, body, "Action flow between versions")


# --- documents ------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def _scenario_rows(m: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, g in [("(all)", m["overall"]), *m["scenarios"].items()]:
        cost = g["expected_cost"]
        rows.append(
            [
                name,
                f"{g['sessions']:,}",
                _pct(g["false_positive_rate"]["step_up_or_harder"]),
                _pct(g["false_positive_rate"]["block"]),
                _pct(g["catch_rate_all_attacks"]),
                _pct(g["interruption_rate"]),
                f"{g['review_queue']['per_1000_sessions'] or 0:.1f}",
                f"{g['review_queue']['per_hour'] or 0:.1f}",
                f"{g['raw_media_escalations_per_1000'] or 0:.1f}",
                "n/a" if cost is None else f"{cost['per_1000_sessions']:,.0f} {cost['currency']}",
            ]
        )
    return rows


SCENARIO_HEADERS = [
    "scenario",
    "sessions",
    "FPR ≥ step_up",
    "FPR block",
    "catch ≥ step_up",
    "interruption",
    "reviews /1k",
    "reviews /h",
    "raw media /1k",
    "cost /1k",
]

CSS = """
body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#1a202c;line-height:1.4}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
td,th{border:1px solid #cbd5e0;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
pre{background:#f7fafc;padding:1em;overflow-x:auto;font-size:12px}
.warn{color:#9b2c2c;font-weight:bold} svg{display:block;margin:1em 0}
"""


def render_board_packet(packet: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``summary.md`` into ``out_dir``; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    new, old = packet["new"], packet.get("old")
    diff, sweep, replay = packet.get("diff"), packet.get("sweep"), packet.get("replay")
    gov = packet["governance"]
    p_new = new["policy"] if new else packet["policy"]
    title = f"Board packet: {p_new['id']} {p_new['version']}"
    parts = [
        f"<h1>{_e(title)}</h1>",
        f"<p>Digest to sign off: <code>{_e(p_new['digest'])}</code></p>",
    ]
    md = [f"# {title}", "", f"Digest to sign off: `{p_new['digest']}`", ""]
    if old:
        parts.append(
            f"<p>Compared with {_e(old['policy']['version'])} "
            f"<code>{_e(old['policy']['digest'])}</code></p>"
        )
        md += [f"Compared with {old['policy']['version']} `{old['policy']['digest']}`", ""]

    # What changed in the policy
    md += ["## What changed in the policy", ""]
    parts.append("<h2>What changed in the policy</h2>")
    change = packet.get("policy_diff") or ["(no earlier version given)"]
    parts.append(f"<pre>{_e(chr(10).join(change))}</pre>")
    md += ["```diff", *change, "```", ""]

    # PIA and data flow
    gd = gov.get("diff")
    md += ["## PIA and data-flow manifest", ""]
    parts.append("<h2>PIA and data-flow manifest</h2>")
    if gd:
        lines = [
            f"pattern: {gd['pattern']['old']} → {gd['pattern']['new']}"
            if gd["pattern"]["old"] != gd["pattern"]["new"]
            else f"pattern unchanged ({gd['pattern']['new']})",
            f"elements added: {', '.join(gd['elements_added']) or 'none'}",
            f"elements removed: {', '.join(gd['elements_removed']) or 'none'}",
        ]
        lines += [
            f"retention of {r['element']}: {r['old']} → {r['new']} days"
            for r in gd["retention_changes"]
        ] or ["retention unchanged"]
        lines += [
            f"fields of {f['element']}: +{', '.join(f['added']) or '-'} "
            f"−{', '.join(f['removed']) or '-'}"
            for f in gd["field_changes"]
        ]
        lines += [f"{k}: {v['old']} → {v['new']}" for k, v in gd["summary_changes"].items()]
        parts.append("<ul>" + "".join(f"<li>{_e(x)}</li>" for x in lines) + "</ul>")
        md += [f"- {x}" for x in lines] + [""]
    else:
        parts.append("<p>No earlier version to compare.</p>")
        md += ["No earlier version to compare.", ""]

    # Governance check
    problems = gov.get("problems", [])
    md += ["## Governance check", ""]
    parts.append("<h2>Governance check</h2>")
    if problems:
        parts.append(
            f'<p class="warn">{len(problems)} problems</p><ul>'
            + "".join(f"<li>{_e(x)}</li>" for x in problems)
            + "</ul>"
        )
        md += [f"**{len(problems)} problems**", ""] + [f"- {x}" for x in problems] + [""]
    else:
        parts.append("<p>passed: no problems.</p>")
        md += ["passed: no problems.", ""]

    # Evidence
    ev = packet.get("evidence") or {}
    md += ["## Evidence the backtest rests on", ""]
    parts.append("<h2>Evidence the backtest rests on</h2>")
    prof = ev.get("profile")
    if prof:
        line = (
            f"Detector response profile {prof.get('sha256', '')}: {prof.get('clips')} clips × "
            f"conditions {', '.join(prof.get('conditions', []))}; detectors "
            f"{', '.join(prof.get('detectors', []))}"
        )
    else:
        line = (
            "No detector response profile: every audio signal was drawn from its hand-set "
            "fallback. Detector performance in this report is NOT measured."
        )
    parts.append(f"<p{' class=warn' if not prof else ''}>{_e(line)}</p>")
    md += [line, ""]
    models = (prof or {}).get("models") or {}
    if models:
        rows = [[ref, digest or "(no model file)"] for ref, digest in sorted(models.items())]
        parts.append(_table(["detector", "model digest"], rows))
        md += [*_md_table(["detector", "model digest"], rows), ""]
    limits = (prof or {}).get("limits") or []
    if limits:
        rows = [
            [x["signal"], x["condition"], x["bonafide"], x["spoof"], _pct(x["auc"])] for x in limits
        ]
        parts.append(
            _table(
                [
                    "signal",
                    "condition",
                    "negatives (bona fide; clean)",
                    "positives (spoof; replayed)",
                    "AUC",
                ],
                rows,
            )
        )
        md += [
            *_md_table(
                [
                    "signal",
                    "condition",
                    "negatives (bona fide; clean)",
                    "positives (spoof; replayed)",
                    "AUC",
                ],
                rows,
            ),
            "",
        ]
    hand = {k: v for k, v in (ev.get("hand_set_signals") or {}).items() if v}
    if hand:
        lines = [f"{k}: {', '.join(v)}" for k, v in sorted(hand.items())]
        parts.append(
            "<p>Hand-set signal distributions (not measured):</p><ul>"
            + "".join(f"<li>{_e(x)}</li>" for x in lines)
            + "</ul>"
        )
        md += (
            ["Hand-set signal distributions (not measured):", ""] + [f"- {x}" for x in lines] + [""]
        )

    # Backtest
    if new:
        md += ["## Backtest", ""]
        parts.append("<h2>Backtest</h2>")
        if not new["costs_declared"]:
            note = "The policy declares no cost table: expected cost is not reported."
            parts.append(f'<p class="warn">{_e(note)}</p>')
            md += [note, ""]
        mix_rows = [(f"new {new['policy']['version']}", new["overall"]["action_mix"])]
        if old:
            mix_rows.append((f"old {old['policy']['version']}", old["overall"]["action_mix"]))
        parts.append(action_mix_plot(mix_rows))
        labels = sorted(new["scenarios"])
        series_fpr = [
            (
                "FPR new",
                NEW,
                [new["scenarios"][s]["false_positive_rate"]["step_up_or_harder"] for s in labels],
            )
        ]
        series_catch = [
            ("catch new", NEW, [new["scenarios"][s]["catch_rate_all_attacks"] for s in labels])
        ]
        series_rev = [
            (
                "reviews/1k new",
                NEW,
                [new["scenarios"][s]["review_queue"]["per_1000_sessions"] for s in labels],
            )
        ]
        if old:

            def o(s: str) -> dict[str, Any] | None:
                return old["scenarios"].get(s)

            series_fpr.append(
                (
                    "FPR old",
                    OLD,
                    [
                        (o(s) or {}).get("false_positive_rate", {}).get("step_up_or_harder")
                        for s in labels
                    ],
                )
            )
            series_catch.append(
                ("catch old", OLD, [(o(s) or {}).get("catch_rate_all_attacks") for s in labels])
            )
            series_rev.append(
                (
                    "reviews/1k old",
                    OLD,
                    [
                        ((o(s) or {}).get("review_queue") or {}).get("per_1000_sessions")
                        for s in labels
                    ],
                )
            )
        parts.append(
            grouped_bars(
                "fpr", "False-positive rate per scenario (step_up or harder)", labels, series_fpr
            )
        )
        parts.append(grouped_bars("catch", "Catch rate per attack scenario", labels, series_catch))
        parts.append(
            grouped_bars(
                "review_load", "Review-queue load per 1,000 sessions", labels, series_rev, "{:.1f}"
            )
        )
        if new["costs_declared"]:
            series_cost = [
                (
                    "cost/1k new",
                    NEW,
                    [
                        (new["scenarios"][s]["expected_cost"] or {}).get("per_1000_sessions")
                        for s in labels
                    ],
                )
            ]
            if old and old["costs_declared"]:
                series_cost.append(
                    (
                        "cost/1k old",
                        OLD,
                        [
                            ((o(s) or {}).get("expected_cost") or {}).get("per_1000_sessions")
                            for s in labels
                        ],
                    )
                )
            parts.append(
                grouped_bars(
                    "cost", "Expected cost per 1,000 sessions", labels, series_cost, "{:,.0f}"
                )
            )
        for label, m in [("new", new), ("old", old)]:
            if m:
                parts.append(
                    f"<h3>{label} {_e(m['policy']['version'])}: {m['corpus']['in_scope']:,} sessions in scope</h3>"
                )
                parts.append(_table(SCENARIO_HEADERS, _scenario_rows(m)))
                md += [
                    f"### {label} {m['policy']['version']}",
                    "",
                    *_md_table(SCENARIO_HEADERS, _scenario_rows(m)),
                    "",
                ]
        t = new["decision_time_us"]
        if t["timed"]:
            line = f"decide() time: p50 {t['p50']:.0f} µs, p95 {t['p95']:.0f} µs, p99 {t['p99']:.0f} µs over {t['timed']:,} sessions"
            parts.append(f"<p>{_e(line)}</p>")
            md += [line, ""]

    # Diff
    if diff:
        md += ["## Sessions whose action changes", ""]
        parts.append("<h2>Sessions whose action changes</h2>")
        line = (
            f"{diff['changed']:,} of {diff['sessions']:,} sessions change "
            f"({diff['harder']:,} harder, {diff['softer']:,} softer)"
        )
        parts.append(f"<p>{_e(line)}</p>")
        md += [line, ""]
        parts.append(flow_plot(diff["flow"]))
        rows = [
            [s, v["sessions"], v["changed"], v["harder"], v["softer"]]
            for s, v in diff["by_scenario"].items()
        ]
        parts.append(_table(["scenario", "sessions", "changed", "harder", "softer"], rows))
        md += [*_md_table(["scenario", "sessions", "changed", "harder", "softer"], rows), ""]
        rrows = [
            [
                g["change"],
                g["sessions"],
                "; ".join(
                    f"#{x['session']} {x['scenario']}: {x['old']['action']}→{x['new']['action']}"
                    for x in g["examples"][:3]
                ),
            ]
            for g in diff["by_reason"][:30]
        ]
        parts.append(_table(["reason change", "sessions", "examples"], rrows))
        md += [*_md_table(["reason change", "sessions", "examples"], rrows), ""]

    if sweep:
        md += ["## Threshold sweep", ""]
        parts.append("<h2>Threshold sweep</h2>")
        parts.append(sweep_plot(sweep))
        rows = [
            [
                p["value"],
                p.get("invalid") or _pct(p["false_positive_rate"]),
                "" if "invalid" in p else _pct(p["catch_rate"]),
                ""
                if "invalid" in p or p["cost_per_1000"] is None
                else f"{p['cost_per_1000']:,.0f}",
                "current" if p["value"] == sweep.get("current") else "",
            ]
            for p in sweep["points"]
        ]
        parts.append(_table([sweep["parameter"], "FPR", "catch", "cost /1k", ""], rows))
        md += [*_md_table([sweep["parameter"], "FPR", "catch", "cost /1k", ""], rows), ""]

    if replay:
        md += ["## Replay of history", ""]
        parts.append("<h2>Replay of history</h2>")
        c = replay["classification"]
        line = (
            f"{replay['decisions']:,} past decisions: {c['unchanged']:,} unchanged, "
            f"{c['changed']:,} changed, {c['error']:,} errors, {c['slower']:,} slower"
        )
        parts.append(f"<p>{_e(line)}</p>")
        md += [line, ""]
        orows = []
        for label, o in [
            *replay["outcomes"]["by_version"].items(),
            ("candidate", replay["outcomes"]["candidate"]),
        ]:
            orows.append(
                [
                    label,
                    o["labelled"],
                    _pct(o["precision_step_up"]),
                    _pct(o["precision_review"]),
                    _pct(o["precision_block"]),
                    _pct(o["overturn_rate"]),
                    o["confirmed_attacks_let_through"],
                ]
            )
        heads = [
            "version",
            "reviewed",
            "precision step_up",
            "precision review",
            "precision block",
            "overturn rate",
            "confirmed attacks let through",
        ]
        parts.append(_table(heads, orows))
        md += [*_md_table(heads, orows), ""]

    # Sign-off
    cmd = (
        f"liveguard governance sign-off {p_new['id']} --digest {p_new['digest']} "
        f"--by 'NAME' --report {out_dir / 'summary.md'} --key KEY.pem"
    )
    parts.append(
        "<h2>Sign-off</h2><p>The board signs this digest, and only this digest:</p>"
        f"<pre>{_e(cmd)}</pre><p>then commits the record under policies/_signoffs/.</p>"
    )
    md += [
        "## Sign-off",
        "",
        "The board signs this digest, and only this digest:",
        "",
        "```",
        cmd,
        "```",
        "",
        "then commits the record under `policies/_signoffs/`.",
        "",
        "| name | role | date | decision |",
        "|---|---|---|---|",
        "|  |  |  |  |",
        "",
    ]

    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        # No network: nothing may load from anywhere, not even from this page's folder.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        + "".join(parts)
        + "</body></html>"
    )
    html_path, md_path = out_dir / "report.html", out_dir / "summary.md"
    html_path.write_text(page, encoding="utf-8")
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    return html_path, md_path
