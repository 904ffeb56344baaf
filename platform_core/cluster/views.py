"""What a worker knows of one conversation across gateway nodes, and who owns it (pure code, no I/O).

Every node that heard of the conversation reports a snapshot (messages.ToolsSnapshot); the worker keeps
each node's newest. Ownership is the single-process gateway's rule across nodes: the first node whose
snapshot has tools (its agent registered first, as this worker hears it) owns the conversation; the tools
the voice loop sees and every call go to that node. The worker is the one place every snapshot of its
conversation reaches, so it decides, and tells every node (`ConversationOwner`): the others refuse their
agents' registrations as the gateway does (`conversation_owned`). Ownership is released when the owner's
snapshot has no tools left (its agent left) or its node is gone; the next registration takes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from platform_core.cluster.messages import ToolsSnapshot
from platform_core.pipeline.tools import ToolSpec


@dataclass
class ConversationView:
    views: dict[str, ToolsSnapshot] = field(default_factory=dict)  # node -> its newest snapshot
    owner: str | None = None

    def apply(self, snapshot: ToolsSnapshot) -> bool:
        """Keep `snapshot` if it is that node's newest; True when the owner changed (tell the nodes)."""
        current = self.views.get(snapshot.node)
        if current is not None and snapshot.seq <= current.seq:
            return False  # older than one already applied
        self.views[snapshot.node] = snapshot
        if self.owner is None and snapshot.tools:
            self.owner = snapshot.node
            return True
        if self.owner == snapshot.node and not snapshot.tools:
            self.owner = None  # its agent left; another registration may take it
            return True
        return False

    def drop_node(self, node: str) -> bool:
        """The node is gone: forget its view; True when it was the owner."""
        self.views.pop(node, None)
        if self.owner != node:
            return False
        self.owner = None
        return True

    @property
    def _owned(self) -> ToolsSnapshot | None:
        return self.views.get(self.owner) if self.owner else None

    @property
    def tools(self) -> list[ToolSpec]:
        owned = self._owned
        return [t.spec for t in owned.tools] if owned else []

    def timeout_for(self, name: str) -> float | None:
        owned = self._owned
        return next((t.timeout_s for t in owned.tools if t.spec.name == name), None) if owned else None

    @property
    def has_agents(self) -> bool:
        """An agent of the customer is connected to some node (it may still register)."""
        return any(view.has_agents for view in self.views.values())
