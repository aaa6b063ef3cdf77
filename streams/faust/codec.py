"""A Faust codec for the Confluent-framed Avro of journeybus topics.

One codec per topic: it decodes with the runtime's own ``TopicCodec`` (magic byte,
schema id → writer schema from the catalogue or the Schema Registry, resolved to the
topic's newest revision) and encodes with it, so an agent's records are byte for byte
what the batched stages write. Decoded records are dicts; Faust turns them into the
topic's generated ``faust.Record`` model (``streams.faust.models``). Encoding takes
a model or a dict and validates it strictly against the schema.
"""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs
from faust.types import ModelT

from streams.core.codec import Codec, TopicCodec


def plain(value: Any) -> Any:
    """``value`` with every Faust model in it turned into a dict of its fields (Avro
    takes dicts; a model's ``to_representation`` keeps nested models)."""
    if isinstance(value, ModelT):
        return {name: plain(getattr(value, name)) for name in value._options.fields}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class AvroCodec(codecs.Codec):
    """Confluent-framed Avro of one catalogue topic (decode and encode).

    Decode raises the runtime's ``DecodeError`` (an ``InvalidRecord``) for bytes that
    are not a record of the topic; Faust wraps it in ``ValueDecodeError`` and a
    ``BusTopic`` dead-letters the message. Encode raises ``InvalidRecord``
    (``schema_violation``) for a record the schema does not accept.
    """

    def __init__(self, topic_codec: TopicCodec, **kwargs: Any) -> None:
        # kept in kwargs too: Faust's clone() (``codec | other``) rebuilds from them
        super().__init__(topic_codec=topic_codec, **kwargs)
        self.topic_codec = topic_codec

    def _loads(self, data: bytes) -> dict[str, Any]:
        return self.topic_codec.decode(data)

    def _dumps(self, obj: Any) -> bytes:
        return self.topic_codec.encode(plain(obj))

    def __repr__(self) -> str:
        return f"<AvroCodec {self.topic_codec.topic.name} schema id {self.topic_codec.schema_id}>"


def avro_codec(codec: Codec, topic: str) -> AvroCodec:
    """The Faust codec of ``topic`` (a catalogue topic name) built on ``codec``."""
    return AvroCodec(codec.for_topic(topic))
