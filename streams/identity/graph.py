"""Identity graph: which identifiers belong to one person, and their customer key.

A union-find over identifiers ``kind:value``. The customer key of a group is
chosen deterministically, whatever order the evidence arrived in: the smallest
customer id (user id) if the group has one, else the smallest identifier of the
next strongest kind (loyalty id, email hash, phone hash, social handle, device
id, anonymous id). Applying the same evidence twice changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

# Strongest first: a group is named after its strongest identifier.
KIND_RANK = {
    "user_id": 0,
    "loyalty_id": 1,
    "email_hash": 2,
    "phone_hash": 3,
    "social_handle": 4,
    "device_id": 5,
    "anonymous_id": 6,
}
# How a non-user-id identifier looks as a customer key (raw ids stay raw).
KEY_PREFIX = {
    "user_id": "",
    "anonymous_id": "",
    "device_id": "",
    "loyalty_id": "loyalty:",
    "email_hash": "email:",
    "phone_hash": "phone:",
    "social_handle": "handle:",
}


def hash_contact(value: str) -> str:
    """SHA-256 hex of a normalised email address or phone number."""
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()


def is_contact_hash(value: str) -> bool:
    """True for a ``hash_contact`` value (64 lower-case hex digits): sources hash
    contact data at ingestion, and an address or a number never looks like one."""
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def contact_node(kind: str, value: str) -> str:
    """The graph node of an email or phone number, hashed here unless it already is."""
    return node(kind, value if is_contact_hash(value) else hash_contact(value))


def node(kind: str, value: str) -> str:
    return f"{kind}:{value}"


def key_of(node_id: str) -> str:
    kind, _, value = node_id.partition(":")
    return KEY_PREFIX[kind] + value


def nodes_for_key(key: str) -> list[str]:
    """The identifiers a customer key can stand for (``email:<h>`` → ``email_hash:<h>``;
    a bare key may be a user id, an anonymous id or a device id)."""
    for kind, prefix in KEY_PREFIX.items():
        if prefix and key.startswith(prefix):
            return [node(kind, key[len(prefix) :])]
    return [node(kind, key) for kind, prefix in KEY_PREFIX.items() if not prefix]


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
