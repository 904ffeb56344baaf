"""The QA window: open a suite (a folder of scenario files), run it against the app's own platform,
follow the runner's output, see the results table, open a run's report or recordings.

The runner is `conversimple-platform test` (docs/qa.md) in a child process (`QProcess`), so a long
suite never blocks the window and a crash of the run cannot take the app down; its calls go to the
platform the app hosts, with the app's API key. Results are read from the run's `report.json`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QProcess, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

COLUMNS = ("scenario", "run", "result", "seconds", "what went wrong")


def runner_command(suite: Path, url: str, api_key: str, report_dir: Path) -> list[str]:
    """How to run a suite: the bundle's own executable (no Python in a bundle), or this Python."""
    args = ["test", str(suite), "--url", url, "--api-key", api_key, "--report-dir", str(report_dir)]
    if getattr(sys, "frozen", False):
        return [sys.executable, *args]
    return [sys.executable, "-m", "platform_core.cli.main", *args]


def result_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The results table of a run's report.json: one row per scenario run."""
    return [
        (
            str(r["name"]),
            str(r["run"]),
            "PASS" if r["passed"] else "FAIL",
            f"{float(r['duration_s']):.1f}",
            str(r.get("problem") or ""),
        )
        for r in report.get("results", [])
    ]


class QaWindow(QMainWindow):
    def __init__(self, url: str, api_key: str, reports_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.url, self.api_key, self.reports_dir = url, api_key, reports_dir
        self.suite: Path | None = None
        self.report_dir: Path | None = None
        self.process: QProcess | None = None
        self.setWindowTitle("Conversimple Studio — QA runs")
        self.resize(1000, 640)
        self.suite_label = QLabel("No suite open")
        self.open_button = QPushButton("Open suite…")
        self.run_button = QPushButton("Run")
        self.report_button = QPushButton("Open report")
        self.folder_button = QPushButton("Open recordings")
        self.run_button.setEnabled(False)
        self.report_button.setEnabled(False)
        self.folder_button.setEnabled(False)
        self.open_button.clicked.connect(self._choose_suite)
        self.run_button.clicked.connect(self.run)
        self.report_button.clicked.connect(lambda: self._open("report.html"))
        self.folder_button.clicked.connect(lambda: self._open(""))
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setMaximumBlockCount(5000)
        self._lay_out()

    def _lay_out(self) -> None:
        buttons = QHBoxLayout()
        for widget in (self.open_button, self.run_button, self.report_button, self.folder_button):
            buttons.addWidget(widget)
        buttons.addStretch(1)
        layout = QVBoxLayout()
        layout.addWidget(self.suite_label)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.output, 1)
        central = QWidget()
        central.setLayout(layout)
        self.setCentralWidget(central)

    def _choose_suite(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a QA suite (a folder of scenario files)")
        if folder:
            self.open_suite(Path(folder))

    def open_suite(self, suite: Path) -> None:
        self.suite = suite
        self.suite_label.setText(f"Suite: {suite}")
        self.run_button.setEnabled(True)

    def run(self) -> None:
        """Run the open suite in a child process; the table fills when it is done."""
        if self.suite is None or (
            self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning
        ):
            return
        self.report_dir = self.reports_dir / time.strftime("%Y%m%d-%H%M%S")
        command = runner_command(self.suite, self.url, self.api_key, self.report_dir)
        self.output.clear()
        self.table.setRowCount(0)
        self.run_button.setEnabled(False)
        self.process = process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        process.readyReadStandardOutput.connect(self._read_output)
        process.finished.connect(self._finished)
        process.start(command[0], command[1:])

    def _read_output(self) -> None:
        if self.process is not None:
            text = bytes(self.process.readAllStandardOutput().data()).decode(errors="replace")
            self.output.insertPlainText(text)

    def _finished(self, code: int, _status: object) -> None:
        self._read_output()
        self.run_button.setEnabled(True)
        verdict = {0: "passed", 1: "failed"}.get(code, f"could not run (exit status {code})")
        self.output.appendPlainText(f"\nThe suite {verdict}.")
        self.show_report()

    def show_report(self) -> None:
        """Fill the table from the run's report.json (when the run got that far)."""
        path = self.report_dir / "report.json" if self.report_dir is not None else None
        if path is None or not path.is_file():
            return
        rows = result_rows(json.loads(path.read_text(encoding="utf-8")))
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                self.table.setItem(i, j, QTableWidgetItem(value))
        self.table.resizeColumnsToContents()
        self.report_button.setEnabled(True)
        self.folder_button.setEnabled(True)

    def _open(self, name: str) -> None:
        if self.report_dir is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.report_dir / name)))
