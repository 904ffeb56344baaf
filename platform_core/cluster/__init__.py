"""Scale-out on NATS (issue 15), first slice: agents' tool calls routed across processes.

A media worker that holds no agent connections uses `RemoteToolRouter` (the voice loop's `ToolRouter`
over NATS); a gateway node runs `ToolRouterService` next to its `AgentGateway`. Nothing on the default,
single-process path imports this package, and importing it does not import `nats`: the client is loaded
when a broker is first connected (see docs/cluster.md).
"""

from __future__ import annotations

from platform_core.cluster.broker import BrokerError, connect_broker, nats_server_path
from platform_core.cluster.service import ToolRouterService
from platform_core.cluster.subjects import Subjects
from platform_core.cluster.worker import RemoteToolRouter

__all__ = [
    "BrokerError",
    "RemoteToolRouter",
    "Subjects",
    "ToolRouterService",
    "connect_broker",
    "nats_server_path",
]
