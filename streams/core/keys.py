"""Customer keys and identifiers: the bus's vocabulary for who an event is about.

An identifier is ``kind:value`` (a node of the identity graph); a customer key is
how the strongest identifier of a person reads on the bus (``email:<hash>``, or a
raw user id). Contact data is hashed (SHA-256 of the normalised value) before it
is an identifier. Used by sources (hashing at ingestion), the stages, erasure
and the sinks alike.
"""

from __future__ import annotations

import hashlib

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
