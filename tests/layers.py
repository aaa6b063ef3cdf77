"""The project's layers, checked: ``python -m tests.layers`` (part of ``make lint``).

streams/core       settings, catalogue, topic names, codec, broker, Kafka clients, errors, metrics
streams/runtime    the batched runner, state + changelogs, side inputs, dead letters, erasures
streams/<domain>   normalise, enrich, identity, journeys, attribution, scoring, profiles
connectors         sources and sinks (they may use the domain's vocabulary)
streams/faust      the Faust toolkit: app factory, Avro codec, generated models, topics
streams/activation the bus's own Faust agents (audiences, decisions, feed)
streams/app        CLI, demo, supervisor, worker, dlq tooling: the only layer importing connectors

A module may import its own layer and the layers below, never one above; the
import graph of the project has no cycles; a project import sits at the top of its
module (not in a function), a topic name is written only in
``streams/core/topics.py``, and settings are read from the environment only by the
application (``get_settings()``), which passes them down. Exits non-zero and says
where, when one of these fails.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("streams", "connectors")
DOMAIN = ("normalise", "enrich", "identity", "journeys", "attribution", "scoring", "profiles")
RANKS = {
    "core": 0,
    "runtime": 1,
    "domain": 2,
    "connectors": 3,
    "faust": 3,
    "activation": 4,
    "app": 5,
}
# Applications read the settings from the environment: the CLI and its commands, and
# the Faust app factory (a Faust agent module is an application of its own).
APPLICATIONS = ("app", "streams.faust.app")
TOPIC_NAMES_MODULE = "streams.core.topics"
SETTINGS_MODULE = "streams.core.settings"  # the one route: the app reads them, then passes them


def layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "connectors":
        return "connectors"
    if len(parts) < 2:
        return None  # the package itself
    if parts[1] in ("core", "runtime", "app", "faust", "activation"):
        return parts[1]
    if parts[1] in DOMAIN:
        return "domain"
    return None


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def resolve(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int, bool]]:
    """(imported project module, line, at module top) of every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    for node in tree.body:  # imports under ``if TYPE_CHECKING:`` count as top
        if isinstance(node, ast.If):
            top |= {id(n) for n in node.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                module = resolve(target, known)
                if module is not None:
                    yield module, node.lineno, id(node) in top


def catalogue_topics() -> set[str]:
    """The topic names of ``schemas/topics`` and their dead-letter topics."""
    names = set()
    for path in (ROOT / "schemas" / "topics").glob("cust.*.yaml"):
        names |= {path.stem, f"{path.stem}.dlq"}
    return names


def topic_names(path: Path, topics: set[str]) -> Iterator[tuple[str, int]]:
    """String constants in code that are a topic name (prose in docstrings is not)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and node.value in topics:
            yield node.value, node.lineno


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def problems() -> list[str]:
    known = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    found: list[str] = []
    topics = catalogue_topics()
    for module, path in known.items():
        where = path.relative_to(ROOT)
        mine = layer(module)
        if mine is None and module not in PACKAGES:
            found.append(f"{where}: not in a layer ({', '.join(RANKS)})")
        for target, line, at_top in imports(path, known):
            if target == module or target in PACKAGES:
                continue
            graph[module].add(target)
            theirs = layer(target)
            if not at_top:
                found.append(f"{where}:{line}: imports {target} inside a function")
            if mine and theirs and RANKS[theirs] > RANKS[mine]:
                found.append(f"{where}:{line}: {mine} imports upward: {target} ({theirs})")
        reads_settings = mine in APPLICATIONS or module in APPLICATIONS
        if (
            not reads_settings
            and module != SETTINGS_MODULE
            and "get_settings()" in path.read_text()
        ):
            found.append(f"{where}: calls get_settings(): settings are passed down from the app")
        if module != TOPIC_NAMES_MODULE:
            found += [
                f"{where}:{line}: topic name {name!r} written outside {TOPIC_NAMES_MODULE}"
                for name, line in topic_names(path, topics)
            ]
    found += [f"import cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    return found


def main() -> int:
    found = problems()
    for problem in found:
        print(problem)
    if found:
        print(f"{len(found)} layer problems", file=sys.stderr)
        return 1
    print(f"layers: {len(modules())} modules, one direction, no cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
