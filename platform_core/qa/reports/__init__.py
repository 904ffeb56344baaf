"""A QA run's reports: JSON (everything), JUnit XML (CI) and one self-contained HTML page (people)."""

from platform_core.qa.reports.html import html_report
from platform_core.qa.reports.json_report import json_report
from platform_core.qa.reports.junit import junit_report

__all__ = ["html_report", "json_report", "junit_report"]
