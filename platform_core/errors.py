"""The one error type: what went wrong (`message`) and what the user can do about it (`hint`).

Every error the studio explains to a person derives from `StudioError`; the app shows `message` and
`hint` in their own places, the command line prints `str(error)` (the message, then `  -> hint`).
"""

from __future__ import annotations


def explained(message: str, hint: str = "") -> str:
    """How an explained failure prints: the message, then `  -> hint` on its own line if there is one."""
    return f"{message}\n  -> {hint}" if hint else message


class StudioError(Exception):
    """An explained failure. `message` says what happened, `hint` (may be empty) what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return explained(self.message, self.hint)
