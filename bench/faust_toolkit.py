"""What the Faust toolkit costs per record, and an example agent's throughput.

    python -m bench.faust_toolkit [SCORES]

1. Per record, CPU (``time.process_time``) over every catalogue example repeated:
   the runtime's decode (a dict), the toolkit's decode into the generated model
   (``AvroCodec.loads`` + ``Model.from_data``), and its encode of the model.
2. ``examples/agents/high_value_alerts.py`` as a Faust worker on an embedded broker
   over SCORES pre-loaded scores that all alert (one JSON output each): outputs per
   second from the first output's broker timestamp to the last's.

Appends the figures to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench.results import record
from streams.core.topics import SCORES
from streams.faust.codec import avro_codec
from streams.faust.testing import (
    AgentWorker,
    bus_broker,
    catalogue_codec,
    consumer_from_start,
    example_records,
    publish,
)
from streams.faust.topics import model_of_schema

ROOT = Path(__file__).parents[1]
ALERTS = "team.high-value-alerts.v1"


def per_record_costs(rounds: int = 2000) -> tuple[dict[str, float], int]:
    """µs of CPU per record to decode (dict), decode to model and encode a model, over
    every catalogue example; and how many records each figure is over."""
    codec = catalogue_codec()
    cases = []
    for topic in sorted(codec.catalog.topics):
        if topic.endswith(".dlq"):
            continue
        model = model_of_schema(codec.catalog.value_schema(topic).raw)
        faust_codec = avro_codec(codec, topic)
        for example in example_records(topic):
            data = codec.encode(topic, example)
            decoded = codec.decode(topic, data)
            value = model.from_data(faust_codec.loads(data), preferred_type=model)
            cases.append((topic, model, faust_codec, data, value, decoded))
    n = rounds * len(cases)

    def timed(step) -> float:
        start = time.process_time()
        for _ in range(rounds):
            for case in cases:
                step(*case)
        return (time.process_time() - start) / n * 1e6

    costs = {
        "runtime decode (dict)": timed(lambda t, m, fc, data, v, d: codec.decode(t, data)),
        "toolkit decode (model)": timed(
            lambda t, m, fc, data, v, d: m.from_data(fc.loads(data), preferred_type=m)
        ),
        "toolkit encode (model)": timed(lambda t, m, fc, data, v, d: fc.dumps(v)),
        "runtime encode (dict)": timed(lambda t, m, fc, data, v, d: codec.encode(t, d)),
    }
    return costs, n


def output_timestamps(bootstrap: str, count: int, timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    consumer = consumer_from_start(bootstrap, ALERTS, timeout_s)
    stamps: list[int] = []
    while len(stamps) < count and time.monotonic() < deadline:
        stamps += [m.timestamp()[1] for m in consumer.consume(1000, 0.5) if not m.error()]
    consumer.close()
    return stamps


def agent_throughput(n: int) -> tuple[float, int]:
    (example, *_) = example_records(SCORES)
    typical = example["typical_expected_value_365d"]
    scores = [
        {
            **example,
            "score_id": f"s-{i}",
            "customer_key": f"c-{i}",
            "expected_value_365d": 3 * typical,
        }
        for i in range(n)
    ]
    with tempfile.TemporaryDirectory() as tmp, bus_broker() as bootstrap:
        publish(bootstrap, SCORES, scores)
        log = Path(tmp) / "agent.log"
        with AgentWorker("examples.agents.high_value_alerts", bootstrap, cwd=ROOT, log_path=log):
            stamps = output_timestamps(bootstrap, n, timeout_s=300)
    span_s = (max(stamps) - min(stamps)) / 1000
    return len(stamps) / span_s if span_s > 0 else float("nan"), len(stamps)


def main(n: int = 20_000) -> None:
    costs, records = per_record_costs()
    rate, outputs = agent_throughput(n)
    lines = [
        f"per record over {records:,} decodes of every catalogue example (CPU µs): "
        + ", ".join(f"{name} **{us:.1f} µs**" for name, us in costs.items()),
        f"example agent (high_value_alerts: decode to model, decide, JSON output): "
        f"**{rate:,.0f} events/s** ({outputs:,} outputs of {n:,} scores, first to last "
        "output by broker timestamp)",
        "how: embedded broker in memory, catalogue partition counts, one worker process, "
        "the toolkit's default settings",
    ]
    print(record("Faust toolkit: codec and models, an example agent", lines))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
