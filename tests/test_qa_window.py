"""The app's QA window, offscreen: it runs the real runner (`conversimple-platform test`) in a child
process and shows what came of it. No engines: the suites here fail before any speech is made (a bad
file; a typed turn to a platform that is not there), which is what the window must show plainly."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.qa_window import QaWindow, runner_command


def test_a_bad_suite_says_it_could_not_run(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "bad.yaml").write_text("name: x\nturns:\n  - sey: hello\n")
    window = QaWindow("http://127.0.0.1:9", "key", tmp_path / "reports")
    qtbot.addWidget(window)
    window.open_suite(suite)
    assert window.run_button.isEnabled()
    window.run()
    qtbot.waitUntil(lambda: "could not run" in window.output.toPlainText(), timeout=30000)
    text = window.output.toPlainText()
    assert "bad.yaml:3" in text and "'sey' was unexpected" in text
    assert window.table.rowCount() == 0 and not window.report_button.isEnabled()


def test_a_failed_run_fills_the_results_table(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "typed.yaml").write_text("name: typed hello\nagent_id: nobody\nturns:\n  - text: hello\n")
    window = QaWindow("http://127.0.0.1:9", "key", tmp_path / "reports")  # nothing listens on port 9
    qtbot.addWidget(window)
    window.open_suite(suite)
    window.run()
    qtbot.waitUntil(lambda: window.table.rowCount() == 1, timeout=60000)
    cells = [window.table.item(0, c).text() for c in range(window.table.columnCount())]
    assert cells[0] == "typed hello" and cells[2] == "FAIL"
    assert "cannot reach the platform" in cells[4]
    assert "The suite failed." in window.output.toPlainText()
    assert window.report_dir is not None and (window.report_dir / "report.html").is_file()
    assert window.report_button.isEnabled()


def test_the_runner_gets_the_apps_platform_and_key(tmp_path: Path) -> None:
    command = runner_command(tmp_path, "http://127.0.0.1:8765", "k3y", tmp_path / "r")
    assert command[-8:] == [
        "test",
        str(tmp_path),
        "--url",
        "http://127.0.0.1:8765",
        "--api-key",
        "k3y",
        "--report-dir",
        str(tmp_path / "r"),
    ]
