"""The naive baseline: the normalise stage's work as a per-event Faust agent.

A faust-streaming app (default aiokafka transport) whose one agent reads the
raw topics event by event (``stream.events()``) and does what the normalise
stage does with each: decode the Avro record, validate, normalise and enrich it
with the same ``Normaliser`` (channel grouping, device, sentiment, catalogue,
identity graph), encode the outputs and ``await topic.send()`` each one. Every
output goes to ``bench.faust.out`` so the baseline leaves the pipeline's topics
alone.

The app gets the settings that were measured to help Faust here
(BROKER-NOTES.md): 6 s session timeout and 1 s heartbeat, 5 ms producer linger,
1 MB producer batches, the ``faust`` and ``aiokafka`` loggers at WARNING and
uvloop when it is installed. It is Faust at its best per event, not a strawman.

Run by ``bench.stages`` as ``python -m bench.faust_baseline BOOTSTRAP RUNTIME_DIR
PROGRESS_FILE``: the worker writes ``[first, last, count]`` (wall clock of the
first and latest processed event, events processed) to the progress file twice
a second, and the caller stops it once the count stops growing.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

OUT_TOPIC = "bench.faust.out"


def build_app(bootstrap: str, runtime_dir: Path, progress_file: Path):
    """The Faust app and its agent (imports Faust only here: the rest of the bench
    does not need it)."""
    import faust

    from streams.core.codec import make_codec
    from streams.core.errors import InvalidRecord
    from streams.core.settings import Settings
    from streams.core.topics import RAW_SOURCES
    from streams.faust.deadletter import KafkaMessage
    from streams.normalise.stage import NormaliseStage
    from streams.runtime.deadletter import DeadLetterPolicy
    from streams.runtime.stage import BatchContext

    settings = Settings(runtime_dir=runtime_dir)
    codec = make_codec(settings)
    stage = NormaliseStage(Settings())
    stage.attach_erasures(codec, settings, bootstrap)
    stage.attach_side_inputs(codec, settings, bootstrap)
    for side in [*stage.side_inputs, stage.erasure_input]:
        side.close()
    policy = DeadLetterPolicy(stage.name)

    app = faust.App(
        "bench-faust-naive",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        producer_linger=0.005,
        producer_max_batch_size=1_048_576,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_disable_leader=True,
    )
    raw = app.topic(*RAW_SOURCES, key_serializer="raw", value_serializer="raw")
    out = app.topic(OUT_TOPIC, key_serializer="raw", value_serializer="raw")
    progress = [0.0, 0.0, 0]

    @app.agent(raw)
    async def normalise(stream):
        async for event in stream.events():
            message = event.message
            now = time.time()
            ctx = BatchContext(stage.name, policy, int(now * 1000))
            msg = KafkaMessage(message)
            try:
                record = codec.decode(message.topic, message.value, message.partition)
            except InvalidRecord as exc:
                ctx.dead_letter(msg, exc)
            else:
                stage.process((message.topic, message.partition), [(msg, record)], None, ctx)
            for output in ctx.outputs:
                key = output.key.encode() if output.key is not None else None
                await out.send(key=key, value=codec.encode(output.topic, output.record))
            progress[0] = progress[0] or now
            progress[1] = time.time()
            progress[2] += 1

    @app.timer(0.5)
    async def report() -> None:
        progress_file.write_text(repr(progress))

    return app


def main(bootstrap: str, runtime_dir: str, progress_file: str) -> None:
    import faust

    loop = None
    try:
        import uvloop

        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
    except ImportError:
        pass
    app = build_app(bootstrap, Path(runtime_dir), Path(progress_file))
    for name in ("faust", "aiokafka", "mode"):
        logging.getLogger(name).setLevel(logging.WARNING)
    faust.Worker(app, loglevel="WARNING", loop=loop).execute_from_commandline()


if __name__ == "__main__":
    main(*sys.argv[1:4])
