"""Connected agents and the tools they registered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class AgentInfo:
    connection_id: str
    customer_id: str
    remote: str = ""
    connected_at: float = 0.0
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)  # tool name -> spec

    @property
    def label(self) -> str:
        return f"{self.customer_id} ({self.connection_id[:8]})"


@dataclass
class AgentsModel:
    agents: dict[str, AgentInfo] = field(default_factory=dict)  # by connection id
    version: int = 0

    def connected(self, connection_id: str, customer_id: str, remote: str, t: float) -> None:
        self.agents[connection_id] = AgentInfo(connection_id, customer_id, remote, t)
        self.version += 1

    def disconnected(self, connection_id: str) -> AgentInfo | None:
        info = self.agents.pop(connection_id, None)
        self.version += 1
        return info

    def tools_registered(self, connection_id: str, customer_id: str, tools: tuple[dict[str, Any], ...]) -> None:
        info = self.agents.get(connection_id)
        if info is None:  # tools can be the first thing we hear of an agent (e.g. the app started late)
            info = self.agents[connection_id] = AgentInfo(connection_id, customer_id)
        for tool in tools:
            name = str(tool.get("name", "?"))
            info.tools[name] = dict(tool)
        self.version += 1

    def customer_ids(self) -> list[str]:
        """Distinct agent identities to call, in connection order."""
        return list(dict.fromkeys(a.customer_id for a in self.agents.values()))
