"""The HTML report: one self-contained page (inline CSS, no scripts, no network) a person opens.

Per scenario run: pass/fail, the first problem, caller and agent audio players (the recordings beside
the report, referenced relatively), and per turn: what the caller did and the platform heard, what the
agent said, tool calls with arguments and results, latency bars against their budgets, the verdict.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from html import escape
from pathlib import Path

from platform_core.events import METRICS
from platform_core.qa.results import ScenarioResult, TurnResult
from platform_core.qa.runner import SuiteResult

_BAR_METRICS = (
    "end_of_turn_delay",
    "transcription_delay",
    "tool_choice",
    "tool_call",
    "llm_ttfs",
    "tts_ttfb",
    "e2e_latency",
    "answer_latency",
    "barge_in_delay",
)
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d1d1f;background:#fafafa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:0}
.summary{margin:8px 0 20px;font-size:15px}
.pass{color:#137333}.fail{color:#b3261e}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:12px}
.badge.pass{background:#137333}.badge.fail{background:#b3261e}
section{background:#fff;border:1px solid #ddd;border-radius:8px;padding:14px 16px;margin:0 0 18px}
section.failed{border-color:#b3261e}
.problem{margin:6px 0;color:#b3261e;font-weight:600}
.meta{color:#666;font-size:12px}
.audio{display:flex;gap:20px;margin:8px 0;flex-wrap:wrap}.audio label{font-size:12px;color:#666;display:block}
table{border-collapse:collapse;width:100%;margin-top:8px}
th,td{border-top:1px solid #eee;padding:6px;vertical-align:top;text-align:left}
th{font-size:12px;color:#666;font-weight:600}
tr.failed td{background:#fdf0ef}
.tool{font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap;word-break:break-word}
.bars{min-width:230px}.bar{display:flex;align-items:center;gap:6px;font-size:11px;margin:1px 0}
.bar .name{width:92px;color:#555}.bar .track{position:relative;flex:1;height:9px;background:#eee;border-radius:3px}
.bar .fill{height:9px;border-radius:3px;background:#4c7be0}.bar .fill.over{background:#b3261e}
.bar .budget{position:absolute;top:-2px;width:2px;height:13px;background:#222}
.failure{color:#b3261e}.note{color:#666;font-style:italic}
"""


def _rel(path: Path, base: Path) -> str:
    return escape(Path(os.path.relpath(path, base)).as_posix())


def _bars(t: TurnResult, scale: float) -> str:
    out = []
    for name, info in METRICS.items():
        value = t.metrics.get(name)
        if value is None or name not in _BAR_METRICS:
            continue
        budget = t.turn.expect.max_latency_s.get(name)
        over = " over" if budget is not None and value > budget else ""
        marker = f'<span class="budget" style="left:{min(budget / scale, 1) * 100:.1f}%"></span>' if budget else ""
        out.append(
            f'<div class="bar" title="{escape(info.description)}"><span class="name">'
            f'{escape(info.label)}</span><span class="track"><span class="fill{over}" style="display:block;'
            f'width:{min(value / scale, 1) * 100:.1f}%"></span>{marker}</span><span>{value:.2f} s</span></div>'
        )
    return "".join(out) or '<span class="note">not measured</span>'


def _tools(t: TurnResult) -> str:
    rows = []
    for c in t.tool_calls:
        outcome = c["result"] if c["status"] == "done" else c["error"]
        rows.append(
            f'<div class="tool">{escape(c["name"])}({escape(json.dumps(c["arguments"]))}) '
            f"{escape(c['status'])} → {escape(json.dumps(outcome))}</div>"
        )
    return "".join(rows) or "-"


def _verdict(t: TurnResult) -> str:
    parts = [f'<div class="failure">✗ {escape(str(f))}</div>' for f in t.failures]
    if t.timed_out:
        parts.append(f'<div class="failure">✗ {escape(t.note)}</div>')
    if not parts:
        parts.append('<div class="pass">✓ passed</div>')
    if t.judged:
        parts.append(f'<div class="note">judge: {escape(t.judged)}</div>')
    return "".join(parts)


def _turn_row(t: TurnResult, scale: float) -> str:
    flags = " (cut by the caller)" if t.interrupted else ""
    return (
        f'<tr class="{"passed" if t.passed else "failed"}"><td>{t.turn.index}</td>'
        f'<td>{escape(t.turn.label)}<div class="meta">line {t.turn.line}, at {t.start_s:.1f} s</div></td>'
        f"<td>{escape(t.user_text) or '-'}</td><td>{escape(t.agent_text) or '-'}{flags}</td>"
        f'<td>{_tools(t)}</td><td class="bars">{_bars(t, scale)}</td><td>{_verdict(t)}</td></tr>'
    )


def _scenario(r: ScenarioResult, base: Path) -> str:
    state = "pass" if r.passed else "fail"
    scale = max([3.0, *(v for t in r.turns for v in t.metrics.values())])
    audio = ""
    if r.folder is not None:
        audio = (
            '<div class="audio">'
            + "".join(
                f'<div><label>{who}</label><audio controls preload="none" src="{_rel(r.folder / f"{who}.wav", base)}">'
                "</audio></div>"
                for who in ("caller", "agent")
            )
            + "</div>"
        )
    run = f" (run {r.run})" if r.run > 1 else ""
    problem = f'<div class="problem">{escape(r.first_problem)}</div>' if not r.passed else ""
    rows = "".join(_turn_row(t, scale) for t in r.turns)
    return (
        f'<section class="{"passed" if r.passed else "failed"}"><h2><span class="badge {state}">{state.upper()}</span> '
        f'{escape(r.scenario.name)}{run}</h2><div class="meta">{escape(str(r.scenario.path))} · agent '
        f"{escape(r.scenario.agent_id or 'default')} · {r.record.duration_s:.1f} s · {escape(r.record.conversation_id)}"
        f"</div>{problem}{audio}<table><tr><th>#</th><th>caller</th><th>platform heard</th><th>agent said</th>"
        f"<th>tool calls</th><th>latency</th><th>verdict</th></tr>{rows}</table></section>"
    )


def html_report(suite: SuiteResult, base: Path) -> str:
    """The page; recordings are linked relative to `base`, the folder the page is written to."""
    failed = sum(not r.passed for r in suite.results)
    state = "pass" if suite.passed else "fail"
    flaky = [k for k, (p, n) in suite.tally().items() if 0 < p < n]
    when = datetime.fromtimestamp(suite.started).strftime("%Y-%m-%d %H:%M:%S")
    summary = (
        f'<div class="summary {state}"><b>{"PASSED" if suite.passed else "FAILED"}</b>: '
        f"{len(suite.results) - failed} of {len(suite.results)} scenario run(s) passed in {suite.duration_s:.1f} s"
        + (f"; flaky: {escape(', '.join(flaky))}" if flaky else "")
        + (f"; {escape(suite.stopped)}" if suite.stopped else "")
        + "</div>"
    )
    body = "".join(_scenario(r, base) for r in suite.results)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>QA run {escape(when)}: '
        f"{'passed' if suite.passed else 'failed'}</title><style>{_CSS}</style></head><body>"
        f'<h1>Conversimple QA run</h1><div class="meta">{escape(when)} · {escape(suite.target)}</div>'
        f"{summary}{body}</body></html>\n"
    )
