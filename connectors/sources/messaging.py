"""Messaging: email, push and SMS sent, delivered, opened, clicked, bounced, unsubscribed.

What tells us which channel each customer responds to. Two ways in, both onto
``cust.messaging.raw.v1`` keyed by user id:

- the ``/webhooks/messaging`` endpoint of the HTTP collector (email/push/SMS
  providers' event webhooks),
- ``messaging-file``: a JSON Lines export (``CONNECTORS__MESSAGING_FILE__PATH``),
  followed as it grows.

Events are the topic's JSON form (``schemas/examples/cust.messaging.raw.v1``):
``channel`` (email, push, sms), ``event_type``, ``message_id``, ``user_id``,
``occurred_at``. Guarantee: at least once, deterministic ``event_id``.
"""

from __future__ import annotations

from pathlib import Path

from connectors.registry import source
from connectors.sources.jsonl import JsonlFileSource, JsonlSettings
from streams.core.topics import MESSAGING


class MessagingFileSettings(JsonlSettings):
    path: Path = Path(".journeybus/inbox/messaging.jsonl")


@source("messaging-file", topic=MESSAGING)
class MessagingFileSource(JsonlFileSource):
    """Messaging events from a JSON Lines file. Key: user id. At least once, file order."""

    settings_class = MessagingFileSettings
