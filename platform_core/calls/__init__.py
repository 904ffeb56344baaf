"""Calls as a library: place one call as a real WebRTC client, follow it, and report on it.

Used by `conversimple-platform call` and `demo` (cli/), the desktop app's self-test, the bench and
the tests. `place.py` runs a call, `tracker.py` follows its events and decides when it is over,
`report.py` builds the JSON report, `text.py` its short human summary, `files.py` writes the results.
"""

from platform_core.calls.place import place_call
from platform_core.calls.report import build_report, percentile_summary, speech_segments_end
from platform_core.calls.text import format_report
from platform_core.calls.tracker import AgentVoiceClock, CallTracker

__all__ = [
    "AgentVoiceClock",
    "CallTracker",
    "build_report",
    "format_report",
    "percentile_summary",
    "place_call",
    "speech_segments_end",
]
