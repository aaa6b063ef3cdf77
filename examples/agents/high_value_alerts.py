"""A downstream agent: alert the CRM team when a new customer looks high-value.

Reads every new customer's score (``cust.customer-scores.v1``) and, when the predicted
365-day value is at least ``HIGH_VALUE_RATIO`` (default 2) times the typical new
customer's, publishes an alert on the team's own topic ``team.high-value-alerts.v1``
(JSON, keyed by customer).

    python -m faust -A examples.agents.high_value_alerts worker -l warn
    journeybus agent run high_value_alerts --dir examples/agents

Delivery: at least once. A crash re-delivers the scores whose offsets were not
committed yet, so an alert may be published twice: ``alert_id`` (the score's id) is
the same each time, and a consumer keeps one per id.
"""

from __future__ import annotations

import os

import faust

from streams.faust.app import bus_app
from streams.faust.models import CustomerScore

RATIO = float(os.environ.get("HIGH_VALUE_RATIO", "2.0"))

app = bus_app("example-high-value-alerts")


class HighValueAlert(faust.Record, include_metadata=False):
    """A new customer predicted to be worth at least RATIO x the typical one."""

    alert_id: str
    customer_key: str
    first_order_id: str
    acquisition_channel: str
    expected_value_365d: float
    typical_expected_value_365d: float
    ratio: float
    scored_at: int


alerts = app.output_topic("team.high-value-alerts.v1", value_type=HighValueAlert, partitions=4)


def alert_for(score: CustomerScore, ratio: float = RATIO) -> HighValueAlert | None:
    """The alert a score deserves, if any (pure: the agent only moves records)."""
    typical = score.typical_expected_value_365d
    if typical <= 0 or score.expected_value_365d < ratio * typical:
        return None
    return HighValueAlert(
        alert_id=score.score_id,
        customer_key=score.customer_key,
        first_order_id=score.first_order_id,
        acquisition_channel=score.acquisition_channel,
        expected_value_365d=score.expected_value_365d,
        typical_expected_value_365d=typical,
        ratio=round(score.expected_value_365d / typical, 3),
        scored_at=score.scored_at,
    )


@app.agent(app.bus.customer_scores)
async def high_value_alerts(scores: faust.Stream[CustomerScore]) -> None:
    async for event in scores.events():
        async with app.dead_letters.guard(event):
            alert = alert_for(event.value)
            if alert is not None:
                await alerts.send(key=alert.customer_key, value=alert)
