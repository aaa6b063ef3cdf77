"""A downstream agent: each touchpoint with what the bus knows of its customer.

Keeps the latest profile per customer (``cust.profiles.v1``, highest ``version`` wins)
in a Faust table, and publishes every touchpoint (``cust.touchpoints.v1``) with the
customer's preferred channel and predicted value on the team's own topic
``team.profiled-touchpoints.v1`` (JSON, keyed by customer). Both topics are keyed by
the stitched customer key with the same partition count, so a customer's profile and
touchpoints land on the same worker (Faust co-partitions them).

    python -m faust -A examples.agents.touchpoint_profiles worker -l warn

Delivery: at least once, ``touchpoint_id`` identifies an output. A touchpoint that
arrives before its customer's first profile goes out without profile fields
(``profile_version`` 0): the join does not wait.
"""

from __future__ import annotations

import faust

from streams.faust.app import bus_app
from streams.faust.models import CustomerProfile, Touchpoint

app = bus_app("example-touchpoint-profiles")


class ProfiledTouchpoint(faust.Record, include_metadata=False):
    """A touchpoint and the customer's profile as it was when the touchpoint was read."""

    touchpoint_id: str
    customer_key: str
    channel: str
    event_type: str
    event_time: int
    profile_version: int
    preferred_channel: str | None = None
    predicted_value: float | None = None


profiled = app.output_topic(
    "team.profiled-touchpoints.v1", value_type=ProfiledTouchpoint, partitions=8
)
# customer key -> the latest profile's fields this agent uses; restored from its
# changelog topic when a worker starts or takes over a partition
profiles = app.Table("profiles", default=dict, partitions=app.bus.profiles.partitions)


def profile_fields(profile: CustomerProfile) -> dict:
    """What the join keeps of a profile (small: the table's changelog holds it)."""
    values = {a.name: a.value for a in profile.attributes}
    predicted = values.get("predicted_value")
    return {
        "version": profile.version,
        "preferred_channel": values.get("preferred_channel"),
        "predicted_value": float(predicted) if predicted else None,
    }


def join(touchpoint: Touchpoint, profile: dict) -> ProfiledTouchpoint:
    return ProfiledTouchpoint(
        touchpoint_id=touchpoint.touchpoint_id,
        customer_key=touchpoint.customer_key,
        channel=touchpoint.channel,
        event_type=touchpoint.event_type,
        event_time=touchpoint.event_time,
        profile_version=profile.get("version", 0),
        preferred_channel=profile.get("preferred_channel"),
        predicted_value=profile.get("predicted_value"),
    )


@app.agent(app.bus.profiles)
async def keep_profiles(stream: faust.Stream[CustomerProfile]) -> None:
    async for event in stream.events():
        async with app.dead_letters.guard(event):
            profile = event.value
            if profile.version > profiles[profile.customer_key].get("version", -1):
                profiles[profile.customer_key] = profile_fields(profile)


@app.agent(app.bus.touchpoints)
async def profile_touchpoints(stream: faust.Stream[Touchpoint]) -> None:
    async for event in stream.events():
        async with app.dead_letters.guard(event):
            touchpoint = event.value
            out = join(touchpoint, profiles[touchpoint.customer_key])
            await profiled.send(key=out.customer_key, value=out)
