"""Records handed on in offset order without holes: a jump is sought back to and waited
for (the embedded broker can show a later batch before an earlier one), and passed,
counted, only once it has stayed a hole for the patience."""

import time

from confluent_kafka import Message, TopicPartition

from streams.core.kafka import Contiguous

T = "cust.touchpoints.stitched.v1"


class Seeks:
    """Records the seeks a consumer was asked for (``Contiguous`` calls only ``seek``)."""

    def __init__(self) -> None:
        self.seeks: list[tuple[str, int, int]] = []

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))


def msgs(partition: int, *offsets: int) -> list[Message]:
    return [Message(topic=T, partition=partition, offset=o, value=b"v") for o in offsets]


def offsets(records: list[Message]) -> list[tuple[int, int]]:
    return [(m.partition(), m.offset()) for m in records]


def test_contiguous_records_pass_untouched():
    contiguous, consumer = Contiguous("s"), Seeks()
    batch = msgs(0, 0, 1, 2) + msgs(1, 7, 8)
    assert contiguous.filter(consumer, batch) is batch
    assert contiguous.filter(consumer, msgs(0, 3)) and consumer.seeks == []


def test_a_jump_is_sought_back_to_and_what_follows_it_held():
    contiguous, consumer = Contiguous("s"), Seeks()
    contiguous.expect(T, 0, 10)
    batch = msgs(0, 10, 11, 14, 15) + msgs(1, 3, 4)
    assert offsets(contiguous.filter(consumer, batch)) == [(0, 10), (0, 11), (1, 3), (1, 4)]
    assert consumer.seeks == [(T, 0, 12)]
    # the missing batch shows up: read again from 12, in order
    assert offsets(contiguous.filter(consumer, msgs(0, 12, 13, 14))) == [(0, 12), (0, 13), (0, 14)]
    assert consumer.seeks == [(T, 0, 12)]


def test_records_before_the_next_offset_are_not_handed_on_twice():
    contiguous, consumer = Contiguous("s"), Seeks()
    contiguous.expect(T, 0, 5)
    assert offsets(contiguous.filter(consumer, msgs(0, 3, 4, 5, 6))) == [(0, 5), (0, 6)]


def test_a_hole_that_never_fills_is_passed_after_the_patience():
    contiguous, consumer = Contiguous("s", patience_s=0.2), Seeks()
    contiguous.expect(T, 0, 0)
    assert offsets(contiguous.filter(consumer, msgs(0, 0, 2))) == [(0, 0)]
    assert consumer.seeks == [(T, 0, 1)]
    time.sleep(0.25)
    assert offsets(contiguous.filter(consumer, msgs(0, 2, 3))) == [(0, 2), (0, 3)]
    assert contiguous.next[(T, 0)] == 4 and len(consumer.seeks) == 1
