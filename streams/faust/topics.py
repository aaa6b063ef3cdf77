"""Every catalogue topic as a Faust topic with its key and value types.

    topics = app.bus                       # a BusTopics of the app
    @app.agent(topics.customer_scores)     # cust.customer-scores.v1
    async def on_score(scores): ...

Attribute names come from the catalogue's names: ``cust.`` and the version dropped,
``.`` and ``-`` become ``_`` (``cust.touchpoints.stitched.v1`` →
``touchpoints_stitched``, ``cust.journeys.v1.dlq`` → ``journeys_dlq``). Keys are the
topic's key as ``str`` (UTF-8); values decode to the topic's generated model
(``streams.faust.models``) through its Avro codec, and sending a model or a dict
encodes it with the schema, so records are the same bytes the batched stages write.
A record that cannot be decoded is dead-lettered (``DeadLetters``), never thrown
into the agent.
"""

from __future__ import annotations

import re
from typing import Any

import faust
from faust.types import Message

from streams.faust.codec import avro_codec
from streams.faust.generate import full_name
from streams.faust.models import TOP_LEVEL


def attribute_name(topic: str) -> str:
    """``cust.customer-scores.v1`` → ``customer_scores`` (``…_dlq`` for a dead-letter topic)."""
    name = re.sub(r"^cust\.", "", topic)
    name = re.sub(r"\.v\d+(?=$|\.dlq$)", "", name)
    return re.sub(r"[.\-]", "_", name)


def model_of_schema(raw: dict[str, Any]) -> type[faust.Record]:
    """The generated model of the Avro schema ``raw`` (a catalogue schema)."""
    return TOP_LEVEL[full_name(raw)]


class BusTopic(faust.Topic):
    """A catalogue topic: values decoded to their model; a record whose key or value
    cannot be decoded goes to the dead-letter topic and the agent goes on."""

    def _compile_decode(self) -> None:
        # Faust compiles ``decode`` per instance; wrapped so that every record decoded
        # counts as processed for the dead-letter rate
        super()._compile_decode()
        decode = self.decode

        async def counted(message: Message, *, propagate: bool = False) -> Any:
            event = await decode(message, propagate=propagate)
            if event is not None:
                self.app.dead_letters.policy.record(True)
            return event

        self.decode = counted  # type: ignore[method-assign]

    async def on_key_decode_error(self, exc: Exception, message: Message) -> None:
        await self.app.dead_letters.send(message, exc.__cause__ or exc)

    async def on_value_decode_error(self, exc: Exception, message: Message) -> None:
        await self.app.dead_letters.send(message, exc.__cause__ or exc)


class BusTopics:
    """The catalogue's topics of one app, built on first use."""

    def __init__(self, app: Any) -> None:
        # app: a streams.faust.app.BusApp (not imported here: it imports this module)
        self._app = app
        catalog = app.codec.catalog
        self._names = {attribute_name(name): name for name in catalog.topics}
        self._topics: dict[str, BusTopic] = {}

    def __getattr__(self, attribute: str) -> BusTopic:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        try:
            return self.topic(self._names[attribute])
        except KeyError:
            known = ", ".join(sorted(self._names))
            raise AttributeError(f"no catalogue topic {attribute!r}; known: {known}") from None

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._names})

    def topic(self, name: str) -> BusTopic:
        """The Faust topic of the catalogue topic ``name``."""
        if name not in self._topics:
            app = self._app
            spec = app.codec.catalog.topic(name)
            self._topics[name] = BusTopic(
                app,
                topics=[name],
                key_type=str,
                value_type=model_of_schema(app.codec.catalog.latest(spec.schema).raw),
                key_serializer="raw",
                value_serializer=avro_codec(app.codec, name),
                partitions=spec.partitions,
            )
        return self._topics[name]
