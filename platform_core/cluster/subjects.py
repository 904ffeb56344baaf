"""Every NATS subject of the cluster, in one place.

Requests go to the gateway nodes; `tools_changed` is the subject the nodes publish on. A tool call (and
its cancel) goes to one node by name, `node_call(id)`: the node whose agent owns the conversation.
`tools` is served by a queue group (any node answers with its own view); `started`, `ended` and `owner`
are heard by every node (an agent may be connected to any of them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

QUEUE_GROUP = "gateway-nodes"
NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # one subject token: no dots, spaces or wildcards


def check_node_id(node_id: str) -> str:
    """`node_id`, or ValueError: it becomes a token of the node's subjects."""
    if not NODE_ID.fullmatch(node_id):
        raise ValueError(f"node id {node_id!r}: use 1-64 letters, digits, '-' or '_'")
    return node_id


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
    def owner(self) -> str:  # message from a worker: which node's agent owns a conversation (or none now)
        return f"{self.prefix}.conversation.owner"

    def node_call(self, node_id: str) -> str:  # request to one node: a tool call; the reply is its outcome
        return f"{self.prefix}.node.{node_id}.tools.call"

    def node_cancel(self, node_id: str) -> str:  # message to one node: cancel pending calls
        return f"{self.prefix}.node.{node_id}.tools.cancel"

    def node_ping(self, node_id: str) -> str:  # request to one node: is it alive (an empty ok reply)
        return f"{self.prefix}.node.{node_id}.ping"

    @property
    def tools_changed(self) -> str:  # message from a node: a conversation's tools changed
        return f"{self.prefix}.tools.changed"
