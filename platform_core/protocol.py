"""The platform's wire constants, defined once: the server, the gateway, the call client and agent_sdk
import them from here (a leaf module: importing it loads nothing else)."""

GATEWAY_PATH = "/customer_sdk/websocket"
"""Where agents connect (the Conversimple SDK's path); everything under it goes to the gateway."""

CALL_PATH = "/call"
"""WebRTC signalling for one caller (server/signalling.py)."""

SUBPROTOCOL = "phoenix-websocket"
"""The websocket subprotocol the Conversimple SDK offers (and agent_sdk too)."""

MAX_FRAME_BYTES = 1024 * 1024
"""Agent frames above this size are answered with a `frame_too_large` protocol error."""

WS_MAX_SIZE = 4 * MAX_FRAME_BYTES
"""The websocket layer's own limit (platform server, standalone gateway, agent_sdk): frames between
the two are read and refused politely; above it websockets closes the connection with 1009."""

TOOL_CALL_CANCELLED = "tool_call_cancelled"
"""Platform -> agent: the platform abandoned a pending call (barge-in, hang-up, conversation end,
shutdown); payload `{call_id, conversation_id, tool_name, reason}`. agent_sdk cancels the tool's task;
conversimple-sdk 0.2.4 logs it as unhandled and goes on (its late answer is dropped)."""
