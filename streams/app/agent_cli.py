"""``journeybus agent``: scaffold and run Faust agents written on the toolkit (streams.faust)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import click

from streams.core.errors import FatalError
from streams.faust.scaffold import scaffold

AGENTS_DIR = Path("agents")


@click.group()
def agent() -> None:
    """Scaffold and run Faust agents on journeybus topics."""


@agent.command("new")
@click.argument("name")
@click.option("--topic", required=True, help="The catalogue topic it subscribes to.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=AGENTS_DIR,
    show_default=True,
    help="Where the agent and its test are written.",
)
def agent_new(name: str, topic: str, directory: Path) -> None:
    """Scaffold agent NAME on TOPIC and its test (pytest DIR runs it, green as written)."""

    for path in scaffold(name, topic, directory):
        click.echo(f"wrote {path}")
    click.echo(f"run it:  journeybus agent run {name} --dir {directory}")
    click.echo(f"test it: pytest {directory / f'test_{name}.py'}")


@agent.command("run")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=AGENTS_DIR,
    show_default=True,
    help="Where the agent module is (NAME.py, or a dotted module name from there).",
)
@click.option(
    "--bus",
    "shipped",
    is_flag=True,
    help="NAME is a module shipped with journeybus (streams.activation.agents), not in --dir.",
)
@click.option("--log-level", default="warn", show_default=True)
def agent_run(name: str, directory: Path, shipped: bool, log_level: str) -> None:
    """Run the Faust worker of agent NAME until Ctrl-C (``python -m faust -A NAME worker``).

    The bus comes from the usual settings (KAFKA_BOOTSTRAP_SERVERS, or the embedded
    broker of ``journeybus up``); uvloop when installed, as measured in bench/."""

    if shipped:
        if importlib.util.find_spec(name) is None:
            raise FatalError(f"no journeybus agent module {name!r}")
    else:
        module = directory / (name.replace(".", "/") + ".py")
        if not module.exists():
            raise FatalError(f"no agent {name!r}: {module} does not exist")
        path = [str(directory.resolve()), os.environ.get("PYTHONPATH")]
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, path))
    command = [sys.executable, "-m", "faust", "-A", name]
    if importlib.util.find_spec("uvloop") is not None:
        command += ["--loop", "uvloop"]
    command += ["worker", "-l", log_level, "--without-web"]
    sys.stdout.flush()
    os.execv(sys.executable, command)  # the worker owns the process and its signals
