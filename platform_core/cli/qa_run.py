"""`conversimple-platform test PATH...`: run QA scenario files as real calls and write the reports.

The command itself is platform_core/qa/command.py (the packaged app runs it too); this module is
what `cli/main.py` registers.
"""

from platform_core.qa.command import add_test_arguments, qa_main

__all__ = ["add_test_arguments", "qa_main"]
