"""agent_sdk: write agents whose tools the platform's LLM calls during conversations.

Speaks the Conversimple SDK protocol; `from conversimple import ConversimpleAgent, tool` code runs after
changing the import to `agent_sdk`.
"""

from agent_sdk.agent import Agent, ConversimpleAgent
from agent_sdk.dispatcher import Dispatcher, load_agents
from agent_sdk.tools import ToolCall, ToolDefinition, tool, tool_async
from agent_sdk.wire import AuthenticationError

ConversimpleDispatcher = Dispatcher

__all__ = [
    "Agent",
    "AuthenticationError",
    "ConversimpleAgent",
    "ConversimpleDispatcher",
    "Dispatcher",
    "ToolCall",
    "ToolDefinition",
    "load_agents",
    "tool",
    "tool_async",
]
