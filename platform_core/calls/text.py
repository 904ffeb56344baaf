"""A call report as a few lines of text (what `conversimple-platform call` and `demo` print)."""

from __future__ import annotations

from typing import Any


def _clip(s: str, n: int) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _sec(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def format_report(report: dict[str, Any]) -> str:
    """A short human summary: one line per turn, then p50/p95 per metric."""
    turns = report["turns"]
    lines = [
        f"call {report['conversation_id']}: {len(turns)} turn(s), status {report['status']}, "
        f"{report['call_duration_s']:.1f} s ({report['ended_reason']})"
        + (f", served by media worker {report['worker']}" if report.get("worker") else "")
    ]
    if turns:
        lines.append(f"{'#':>3}  {'caller':<30}  {'agent':<38}  {'e2e s':>6}  tools")
        for t in turns:
            tools = ", ".join(f"{c['name']}:{c['status']}" for c in t["tool_calls"]) or "-"
            flag = " (interrupted)" if t["interrupted"] else " (FAILED)" if t.get("failed") else ""
            lines.append(
                f"{t['turn_id']:>3}  {_clip(t['user_text'], 30):<30}  {_clip(t['agent_text'] + flag, 38):<38}  "
                f"{_sec(t['metrics']['e2e_latency']):>6}  {tools}"
            )
        lines.append(f"{'metric':<20} {'n':>3} {'p50 s':>7} {'p95 s':>7}")
        for name, s in report["summary"].items():
            if s["count"]:
                lines.append(f"{name:<20} {s['count']:>3} {_sec(s['p50']):>7} {_sec(s['p95']):>7}")
    lines += [f"note: {n}" for n in report["notes"]]
    lines += [f"error ({e['where']}): {e['message']} {e['hint'] or ''}".rstrip() for e in report["errors"]]
    return "\n".join(lines)
