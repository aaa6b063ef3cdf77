"""Social listening: mentions, comments, shares, likes and click-throughs from posts.

Two ways in, both onto ``cust.social.raw.v1`` keyed by handle:

- the ``/webhooks/social`` endpoint of the HTTP collector (listening tools push),
- ``social-file``: a JSON Lines export a listening tool writes or an operator
  drops (``CONNECTORS__SOCIAL_FILE__PATH``), followed as it grows.

Events are the topic's JSON form (``schemas/examples/cust.social.raw.v1``):
``platform``, ``handle``, ``event_type`` (mention, comment, share, like,
click_through, ...), ``occurred_at``. Guarantee: at least once, deterministic
``event_id`` from the provider.
"""

from __future__ import annotations

from pathlib import Path

from connectors.registry import source
from connectors.sources.jsonl import JsonlFileSource, JsonlSettings
from streams.core.topics import SOCIAL


class SocialFileSettings(JsonlSettings):
    path: Path = Path(".journeybus/inbox/social.jsonl")


@source("social-file", topic=SOCIAL)
class SocialFileSource(JsonlFileSource):
    """Social events from a JSON Lines file. Key: handle. At least once, file order."""

    settings_class = SocialFileSettings
