"""Every NATS subject of the cluster, in one place.

Requests go to the gateway nodes; `tools_changed` is the one subject the nodes publish on. `call` and
`tools` are served by a queue group (one node answers each request); `started`, `ended` and `cancel` are
heard by every node (an agent may be connected to any of them).
"""

from __future__ import annotations

from dataclasses import dataclass

QUEUE_GROUP = "gateway-nodes"


@dataclass(frozen=True)
class Subjects:
    """The subjects under one prefix (a deployment's namespace: two clusters may share a broker)."""

    prefix: str = "conversimple"

    @property
    def started(self) -> str:  # request: a conversation started on a worker
        return f"{self.prefix}.conversation.started"

    @property
    def ended(self) -> str:  # request: it ended
        return f"{self.prefix}.conversation.ended"

    @property
    def tools(self) -> str:  # request: the conversation's tools, waiting up to wait_s for a registration
        return f"{self.prefix}.tools.list"

    @property
    def call(self) -> str:  # request: one tool call; the reply is its outcome
        return f"{self.prefix}.tools.call"

    @property
    def cancel(self) -> str:  # message: cancel pending calls (one, a turn's, or the conversation's)
        return f"{self.prefix}.tools.cancel"

    @property
    def tools_changed(self) -> str:  # message from a node: a conversation's tools changed
        return f"{self.prefix}.tools.changed"
