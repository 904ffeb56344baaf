"""The one error type: what went wrong (`message`) and what the user can do about it (`hint`).

Every error the studio explains to a person derives from `StudioError`; the app shows `message` and
`hint` in their own places, the command line prints `str(error)` (the message, then `  -> hint`).
"""

from __future__ import annotations


class StudioError(Exception):
    """An explained failure. `message` says what happened, `hint` (may be empty) what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  -> {self.hint}" if self.hint else self.message
