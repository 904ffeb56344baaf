"""The agent gateway: agents written with conversimple-sdk or agent_sdk connect here and serve tool calls."""

from platform_core.gateway.gateway import AgentGateway
from platform_core.gateway.server import serve_gateway
from platform_core.gateway.state import AgentInfo
from platform_core.protocol import GATEWAY_PATH, MAX_FRAME_BYTES, SUBPROTOCOL, WS_MAX_SIZE

__all__ = [
    "GATEWAY_PATH",
    "MAX_FRAME_BYTES",
    "SUBPROTOCOL",
    "WS_MAX_SIZE",
    "AgentGateway",
    "AgentInfo",
    "serve_gateway",
]
