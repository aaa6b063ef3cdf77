"""Identity graph: which identifiers belong to one person, and their customer key.

A union-find over identifiers ``kind:value`` (``streams.core.keys``). The customer
key of a group is chosen deterministically, whatever order the evidence arrived
in: the smallest customer id (user id) if the group has one, else the smallest
identifier of the next strongest kind (loyalty id, email hash, phone hash, social
handle, device id, anonymous id). Applying the same evidence twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.core.keys import KIND_RANK, key_of


def _rank(node_id: str) -> tuple[int, str]:
    kind, _, value = node_id.partition(":")
    return KIND_RANK[kind], value


class IdentityGraph:
    """Union-find of identifiers; ``customer_key`` resolves any identifier."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._parent)

    def __contains__(self, node_id: str) -> bool:
        return node_id in self._parent

    def _find(self, node_id: str) -> str:
        parent = self._parent.setdefault(node_id, node_id)
        if parent == node_id:
            return node_id
        root = self._find(parent)
        self._parent[node_id] = root  # path compression
        return root

    def link(self, nodes: Iterable[str]) -> bool:
        """Put ``nodes`` in one group; True when that joined groups or added identifiers."""
        nodes = [n for n in nodes if n.partition(":")[2]]
        if not nodes:
            return False
        changed = any(n not in self._parent for n in nodes)
        roots = {self._find(n) for n in nodes}
        if len(roots) > 1:
            best = min(roots, key=_rank)
            for root in roots:
                self._parent[root] = best
            changed = True
        return changed

    def root(self, node_id: str) -> str | None:
        return self._find(node_id) if node_id in self._parent else None

    def group(self, node_id: str) -> list[str]:
        """Every identifier in ``node_id``'s group (none if unknown); scans the graph."""
        root = self.root(node_id)
        if root is None:
            return []
        return sorted(n for n in list(self._parent) if self._find(n) == root)

    def forget(self, nodes: Iterable[str]) -> list[str]:
        """Remove the groups of ``nodes`` (erasure); returns the identifiers removed.

        Scans the graph once: erasures are rare next to links.
        """
        roots = {r for r in (self.root(n) for n in nodes) if r is not None}
        if not roots:
            return []
        removed = sorted(n for n in list(self._parent) if self._find(n) in roots)
        for n in removed:
            del self._parent[n]
        return removed

    def customer_key(self, node_id: str) -> str | None:
        """Customer key of the group ``node_id`` belongs to, or None if unknown."""
        root = self.root(node_id)
        return key_of(root) if root else None
