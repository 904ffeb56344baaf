"""The agent gateway: agents written with conversimple-sdk or agent_sdk connect here and serve tool calls.

Its path, subprotocol and frame limits are in platform_core/protocol.py."""

from platform_core.gateway.gateway import AgentGateway
from platform_core.gateway.server import serve_gateway
from platform_core.gateway.state import AgentInfo

__all__ = [
    "AgentGateway",
    "AgentInfo",
    "serve_gateway",
]
