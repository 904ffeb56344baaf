"""View models: plain Python state derived from platform events, read by widgets on their timers.

No Qt here, so they are tested without a window and reused when a saved conversation is reopened.
"""

from app.viewmodels.session import SessionModel

__all__ = ["SessionModel"]
