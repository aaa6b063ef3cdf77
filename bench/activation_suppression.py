"""Channel suppression on the whole pipeline against the generated truth.

    python -m bench.activation_suppression [CUSTOMERS]

The generator's activation population (``activation=True``) through every stage
(one process: broker, stages and sink as in the end-to-end tests) and the activation
agents as a Faust worker. Once the tables settle, the current channel decisions are
compared with the truth: the customers generated to ignore email and answer on social
must have email suppressed and social kept; the customers who opened an email must
not have email suppressed. Appends the figures to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.results import record
from connectors.generator.population import PopulationGenerator
from streams.faust.testing import AgentWorker
from tests.pipeline import Pipeline

ROOT = Path(__file__).parents[1]
COUNTS = (
    "SELECT (SELECT count(*) FROM touchpoints), (SELECT count(*) FROM channel_decisions), "
    "(SELECT count(*) FROM audience_changes), (SELECT count(*) FROM recommendations)"
)


def settle(pipe: Pipeline, touchpoints: int) -> None:
    previous = None
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 10:
        try:
            now = pipe.query(COUNTS)[0]
        except Exception:  # the snapshot is not there yet
            now = None
        if now != previous or now is None or now[0] < touchpoints:
            previous, quiet_since = now, time.monotonic()
        time.sleep(1)


def main() -> None:
    customers = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    gen = PopulationGenerator(customers, seed=17, activation=True)
    events = gen.generate()
    truth = gen.truth
    with tempfile.TemporaryDirectory() as tmp:
        pipe = Pipeline(Path(tmp)).start()
        agents = AgentWorker(
            "streams.activation.agents", pipe.bootstrap, cwd=ROOT, log_path=Path(tmp) / "a.log"
        ).start()
        try:
            start = time.monotonic()
            pipe.publish(events)
            settle(pipe, sum(truth.events.values()))
            elapsed = time.monotonic() - start
            rows = pipe.query(
                "SELECT customer_key, channel, decision FROM channel_decisions_current"
            )
        finally:
            agents.stop()
            pipe.close()
    decisions = {(c, ch): d for c, ch, d in rows}
    answering = truth.answers_social
    right = [
        c
        for c in answering
        if decisions.get((c, "email")) == "suppress" and decisions.get((c, "social")) == "keep"
    ]
    responsive_suppressed = [
        c for c in truth.opens_email if decisions.get((c, "email")) == "suppress"
    ]
    suppressed = {c for (c, ch), d in decisions.items() if ch == "email" and d == "suppress"}
    by_channel = Counter((ch, d) for (_, ch), d in decisions.items())
    lines = [
        f"activation population of {customers} customers (seed 17), "
        f"{sum(truth.events.values())} events through every stage and the activation agents, "
        f"settled in {elapsed:.0f} s",
        f"email ignorers who answer on social: {len(right)} of {len(answering)} have email "
        "suppressed and social kept",
        f"customers who opened an email: {len(responsive_suppressed)} of "
        f"{len(truth.opens_email)} suppressed on email",
        f"email suppressed: {len(suppressed)} customers, "
        f"{len(suppressed & set(truth.ignores_email))} of them generated to ignore email",
        "current decisions: "
        + ", ".join(f"{ch} {d} {n}" for (ch, d), n in sorted(by_channel.items())),
    ]
    print("\n".join(lines))
    record("Activation: channel suppression against the generated truth", lines)


if __name__ == "__main__":
    main()
