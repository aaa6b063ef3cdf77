"""``journeybus connector new``: a working one-file source and its contract test.

The scaffold is a complete source (it follows a folder of JSON files) that
passes the contract suite as written, so an engineer starts from green and
replaces ``poll`` and ``commit`` with the real system's reads and cursor.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from streams.core import topics
from streams.core.catalog import default_catalog
from streams.core.errors import FatalError

SOURCE = Template('''"""$title: events from <the outside system> onto ``$topic``.

Guarantee: at least once; ``event_id`` must be deterministic (the same input
always gives the same id) so that re-sent records are harmless. Key: the
topic's key field. Settings: ``CONNECTORS__${env}__<KEY>``.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from connectors.base import PollingSource
from connectors.record import SourceRecord
from connectors.registry import source
from connectors.settings import ConnectorSettings
from streams.core.errors import InvalidRecord
from streams.core.topics import $topic_name


class ${cls}Settings(ConnectorSettings):
    """``CONNECTORS__${env}__*``."""

    folder: Path = Path(".journeybus/inbox/$name")


@source("$name", topic=$topic_name)
class $cls(PollingSource[${cls}Settings]):
    """Reads one event per ``*.json`` file of ``folder``, in file-name order.

    Writers must move complete files in (write ``name.tmp``, then rename): a
    file is read once, as it is when first seen.

    Replace ``poll``/``commit`` with your system's read and cursor; keep the
    contract: records after the committed position, position stored only in
    ``commit`` (after the broker acknowledged).
    """

    settings_class = ${cls}Settings

    def setup(self) -> None:
        self.state = self.settings.runtime_dir / "connectors" / "$name.position.json"
        self.position = json.loads(self.state.read_text()) if self.state.exists() else ""

    def poll(self, max_records: int) -> list[SourceRecord]:
        if not self.conf.folder.exists():
            return []
        names = sorted(p.name for p in self.conf.folder.glob("*.json") if p.name > self.position)
        records = []
        for name in names[:max_records]:
            raw = (self.conf.folder / name).read_bytes()
            try:
                records.append(SourceRecord(orjson.loads(raw), name, raw))
            except orjson.JSONDecodeError as exc:
                error = InvalidRecord("invalid_json", str(exc))
                records.append(SourceRecord.invalid(error, raw, name))
        return records

    def commit(self, position: str) -> None:
        self.state.parent.mkdir(parents=True, exist_ok=True)
        self.state.write_text(json.dumps(position))
        self.position = position
''')

TEST = Template('''"""The contract suite over the $name source."""

from __future__ import annotations

import uuid

import orjson

from connectors.testing import Harness, SourceContract, example_records
from connectors.testing import bootstrap  # noqa: F401  (a broker, when no conftest has one)
from $package.$module import $cls


class ${cls}Harness(Harness):
    """Writes the source's input: here, JSON files into its folder."""

    def settings(self):
        self.folder = self.tmp_path / "inbox"
        self.folder.mkdir()
        self.tag = uuid.uuid4().hex[:6]
        return $cls.settings_class(
            topic_prefix=self.prefix, poll_interval_s=0.1, folder=self.folder, batch_max_records=7
        )

    def _drop(self, name, content):
        """Write beside, then rename: the source never sees half a file."""
        tmp = self.folder / f"{name}.tmp"
        tmp.write_bytes(content)
        tmp.rename(self.folder / name)

    def feed(self, running, start, count):
        records = example_records($cls.topic, start, count, self.tag)
        for i, record in zip(range(start, start + count), records, strict=True):
            self._drop(f"{i:08d}.json", orjson.dumps(record))
        key = $key
        return {r["event_id"]: r[key] for r in records}

    def feed_invalid(self, running):
        self._drop("00000000-broken.json", b"{not json")
        return "invalid_json"


class Test$cls(SourceContract):
    connector = $cls
    harness = ${cls}Harness
''')


def scaffold(name: str, topic: str, directory: Path, tests: Path, package: str) -> list[Path]:
    """Write ``<directory>/<module>.py`` and ``<tests>/test_<module>.py``; their paths.
    ``topic`` must be one ``streams.core.topics`` names (where topic names are written)."""
    key = default_catalog().topic(topic).key["field"]  # an unknown topic fails here
    names = [n for n, v in vars(topics).items() if n.isupper() and v == topic]
    if not names:
        raise FatalError(f"{topic} has no name in streams/core/topics.py: add it there first")
    module = name.replace("-", "_")
    cls = "".join(part.title() for part in name.split("-")) + "Source"
    values = {
        "name": name,
        "module": module,
        "cls": cls,
        "topic": topic,
        "topic_name": names[0],
        "env": module.upper(),
        "title": name.replace("-", " ").capitalize(),
        "package": package,
        "key": repr(key),
    }
    source_path, test_path = directory / f"{module}.py", tests / f"test_{module}.py"
    for path in (source_path, test_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; not overwriting it")
    directory.mkdir(parents=True, exist_ok=True)
    tests.mkdir(parents=True, exist_ok=True)
    source_path.write_text(SOURCE.substitute(values))
    test_path.write_text(TEST.substitute(values))
    return [source_path, test_path]
