"""`Agent` (alias `ConversimpleAgent`): what an agent author subclasses.

An agent written for conversimple-sdk moves here by changing its imports. Lifecycle hooks are methods
to override (`def on_conversation_started(self, conversation_id)`) or, as in conversimple, setters that
take a callback (`agent.on_conversation_started(callback)`); sync or async either way.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, ClassVar

from agent_sdk.runtime import Runtime
from agent_sdk.tools import ToolDefinition, discover
from agent_sdk.wire import derived_customer_id
from platform_core.protocol import GATEWAY_PATH

log = logging.getLogger(__name__)

DEFAULT_URL = f"ws://127.0.0.1:8765{GATEWAY_PATH}"
_current: ContextVar[str | None] = ContextVar("agent_sdk_conversation", default=None)


def _hook(event: str) -> Callable[..., Any]:
    def hook(self: Agent, callback: Any = None, *_args: Any) -> None:
        """Override to handle the event, or call with a callback to register one (conversimple style)."""
        if callable(callback):
            self._callbacks[event] = callback

    hook.__name__ = f"on_{event}"
    return hook


class Agent:
    agent_id: ClassVar[str | None] = None
    """Which conversations a dispatcher starts this class for (the platform's agent id)."""

    def __init__(
        self,
        api_key: str | None = None,
        customer_id: str | None = None,
        platform_url: str | Sequence[str] | None = None,
        max_reconnect_attempts: int | None = None,
        reconnect_backoff: float = 2.0,
        max_backoff: float = 30.0,
        total_retry_duration: float | None = None,
        enable_circuit_breaker: bool = True,
        *,
        heartbeat_interval: float = 30.0,
        backoff_initial: float = 0.5,
    ) -> None:
        """The same parameters as conversimple's ConversimpleAgent (reconnect_backoff is the backoff's
        growth factor), plus the heartbeat interval and the first reconnection delay."""
        self.api_key = api_key or os.environ.get("CONVERSIMPLE_API_KEY", "")
        self.customer_id = customer_id or derived_customer_id(self.api_key)
        self.platform_url = platform_url or os.environ.get("CONVERSIMPLE_PLATFORM_URL", DEFAULT_URL)
        self._options: dict[str, Any] = {
            "max_reconnect_attempts": max_reconnect_attempts,
            "backoff_factor": reconnect_backoff,
            "backoff_max": max_backoff,
            "total_retry_duration": total_retry_duration,
            "retry_refused_key": not enable_circuit_breaker,
            "heartbeat_interval": heartbeat_interval,
            "backoff_initial": backoff_initial,
        }
        self.tools: dict[str, ToolDefinition] = discover(self)
        self._states: dict[str, dict[str, Any]] = {}
        self._last_conversation: str | None = None
        self._callbacks: dict[str, Callable[..., Any]] = {}
        self._runtime: Runtime[Agent] | None = None

    # --- per-conversation state ----------------------------------------------------------------------

    @property
    def conversation_id(self) -> str | None:
        """The conversation of the running tool or hook (else the latest one)."""
        return _current.get() or self._last_conversation

    @property
    def state(self) -> dict[str, Any]:
        """A dict private to the current conversation, dropped when it ends."""
        conversation_id = self.conversation_id or ""
        return self._states.setdefault(conversation_id, {})

    def state_for(self, conversation_id: str) -> dict[str, Any]:
        return self._states.setdefault(conversation_id, {})

    @contextlib.contextmanager
    def _in_conversation(self, conversation_id: str) -> Iterator[None]:
        token = _current.set(conversation_id)
        try:
            yield
        finally:
            _current.reset(token)

    def _conversation_bound(self, conversation_id: str) -> None:
        self._last_conversation = conversation_id

    def _conversation_unbound(self, conversation_id: str) -> None:
        self._states.pop(conversation_id, None)

    # --- running standalone -----------------------------------------------------------------------------

    async def start(self, conversation_id: str | None = None) -> None:
        """Connect and serve every conversation of the customer (or register for `conversation_id`
        at once). Returns when connected; raises AuthenticationError if the key is refused."""
        self._runtime = Runtime(
            self.platform_url,
            self.api_key,
            self.customer_id,
            lambda _c, _a: self,
            on_error=self._platform_error,
            **self._options,
        )
        if conversation_id:
            self._runtime.bind(conversation_id, self)
        await self._runtime.start()

    async def stop(self) -> None:
        if self._runtime is not None:
            await self._runtime.stop()

    async def run_forever(self, conversation_id: str | None = None) -> None:
        """start(), then serve until stopped or the connection gives up (raises why)."""
        await self.start(conversation_id)
        assert self._runtime is not None
        await self._runtime.connection.wait_closed()
        if self._runtime.connection.failure is not None:
            raise self._runtime.connection.failure

    async def _platform_error(self, error_type: str, message: str, details: dict[str, Any]) -> None:
        await self._fire("error", error_type, message, details)

    # --- lifecycle hooks: override, or call with a callback ------------------------------------------
    # on_conversation_started(conversation_id)       on_conversation_ended(conversation_id)
    # on_tool_called(tool_call: ToolCall)            on_tool_completed(call_id, result)
    # on_tool_cancelled(call_id, reason): the platform abandoned the call (barge-in, hang-up); an async
    #   tool's task is cancelled, a sync tool's thread runs on but its result is dropped
    # on_error(error_type, message, details)         on_config_update(config)
    # on_connection_warning(message, details): e.g. another connection (same API key) tried to register
    #   tools for a conversation this agent serves and was refused; the default logs it only
    # Typed as Callable[..., Any] so subclasses may override them with their own signatures.

    on_conversation_started = _hook("conversation_started")
    on_conversation_ended = _hook("conversation_ended")
    on_tool_called = _hook("tool_called")
    on_tool_completed = _hook("tool_completed")
    on_tool_cancelled = _hook("tool_cancelled")
    on_error = _hook("error")
    on_config_update = _hook("config_update")
    on_connection_warning = _hook("connection_warning")

    def _handler(self, hook: str) -> Callable[..., Any] | None:
        """The override or registered callback for `hook`, or None (then the runtime skips the work)."""
        name = f"on_{hook}"
        if getattr(type(self), name) is not getattr(Agent, name):
            override: Callable[..., Any] = getattr(self, name)
            return override
        return self._callbacks.get(hook)

    async def _fire(self, hook: str, *args: Any) -> None:
        target = self._handler(hook)
        if target is None:
            return
        name = f"on_{hook}"
        conversation = args[0] if hook.startswith("conversation") else getattr(args[0], "conversation_id", None)
        token = _current.set(conversation) if isinstance(conversation, str) else None
        try:
            result = target(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("%s.%s failed", type(self).__name__, name)
        finally:
            if token is not None:
                _current.reset(token)


ConversimpleAgent = Agent
