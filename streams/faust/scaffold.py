"""``journeybus agent new``: a Faust agent module and its test, green as written.

The agent reads one catalogue topic, decides in a pure function (``handle``) and
publishes what it decides on a topic of its own; the test calls ``handle`` on the
catalogue's examples, then runs the agent as a worker on an embedded broker and
reads its output back.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from streams.core import topics as topic_names
from streams.core.catalog import default_catalog
from streams.core.errors import FatalError
from streams.faust.topics import attribute_name, model_of_schema

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")

AGENT = '''"""{name}: a Faust agent on {topic} (scaffolded by ``journeybus agent new``).

    journeybus agent run {name} --dir {directory}
    # or: PYTHONPATH={directory} python -m faust -A {name} worker -l warn

Reads every record of {topic} as a ``{model}``,
decides in ``handle`` and publishes what it decides on
``{output}`` (JSON, keyed like the input).

Delivery: at least once. A crash re-delivers what was not committed yet, so an
output may be published twice; ``source_id`` is the same each time.
"""

from __future__ import annotations

import faust

from streams.faust.app import bus_app
from streams.faust.models import {model}

app = bus_app("{name}")


class Output(faust.Record, include_metadata=False):
    """What this agent publishes: replace with your own fields."""

    source_id: str
    source_time: int


output = app.output_topic("{output}", value_type=Output, partitions={partitions})


def handle(record: {model}) -> Output | None:
    """The decision, a pure function (None: publish nothing for this record)."""
    return Output(source_id=record.{id_field}, source_time=record.{time_field})


@app.agent(app.bus.{attribute})
async def {name}(stream: faust.Stream[{model}]) -> None:
    async for event in stream.events():
        async with app.dead_letters.guard(event):  # a failing record is dead-lettered
            out = handle(event.value)
            if out is not None:
                await output.send(key=event.key, value=out)
'''

TEST = '''"""Tests of the {name} agent: its decision, and the agent on a real (embedded) broker."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

from streams.core.settings import get_settings
from streams.core.topics import {constant}
from streams.faust.testing import AgentWorker, bus_broker, example_records, publish, read_topic

HERE = Path(__file__).parent
OUTPUT = "{output}"


@pytest.fixture(scope="module")
def bootstrap():
    with bus_broker() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def agent(bootstrap):
    """The agent's module, imported with the test broker as its bus."""
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    get_settings.cache_clear()
    return importlib.import_module("{name}")


def test_handle_decides_on_every_catalogue_example(agent):
    examples = example_records({constant})
    assert examples
    for record in examples:
        out = agent.handle(agent.{model}.from_data(record))
        assert out is not None
        assert out.source_id == record["{id_field}"]


def test_agent_publishes_one_output_per_record(agent, bootstrap):
    records = [
        {{**example, "{id_field}": f"{{example['{id_field}']}}-{{n}}"}}
        for n, example in enumerate(example_records({constant}) * 3)
    ]
    publish(bootstrap, {constant}, records)
    with AgentWorker("{name}", bootstrap, cwd=HERE) as worker:
        found = read_topic(bootstrap, OUTPUT, count=len(records), timeout_s=90)
        assert worker.alive()
    ids = sorted(value["source_id"] for _, value in found)
    assert ids == sorted(record["{id_field}"] for record in records)
'''


def topic_constant(topic: str) -> str:
    """The ``streams.core.topics`` constant naming ``topic``."""
    for constant, value in vars(topic_names).items():
        if constant.isupper() and value == topic:
            return constant
    known = ", ".join(
        sorted(v for k, v in vars(topic_names).items() if k.isupper() and isinstance(v, str))
    )
    raise FatalError(f"{topic!r}: not a topic agents subscribe to; one of {known}")


def scaffold(name: str, topic: str, directory: Path) -> list[Path]:
    """Write ``<directory>/<name>.py`` and ``<directory>/test_<name>.py``; their paths.
    Refuses to overwrite either."""
    if not IDENTIFIER.match(name) or keyword.iskeyword(name):
        raise FatalError(f"{name!r}: use a Python module name, e.g. vip_alerts")
    constant = topic_constant(topic)
    catalog = default_catalog()
    spec = catalog.topic(topic)
    model = model_of_schema(catalog.latest(spec.schema).raw)
    fields = list(model._options.fields)
    time_field = next(
        f for f in fields if f.endswith(("_time", "_at")) and model._options.fields[f] is int
    )
    values = {
        "name": name,
        "topic": topic,
        "directory": directory,
        "model": model.__name__,
        "attribute": attribute_name(topic),
        "constant": constant,
        "output": f"agents.{name.replace('_', '-')}.v1",
        "partitions": spec.partitions,
        "id_field": fields[0],
        "time_field": time_field,
    }
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for path, template in (
        (directory / f"{name}.py", AGENT),
        (directory / f"test_{name}.py", TEST),
    ):
        if path.exists():
            raise FatalError(f"{path} exists: not overwritten")
        path.write_text(template.format(**values))
        written.append(path)
    return written
