"""Every topic name the code uses: written here, and only here, each checked against
the catalogue (``schemas/topics``) when this module is imported, so a name the
catalogue does not have fails at start, not at the first record.

``python -m tests.layers`` (``make lint``) fails on a topic name written anywhere
else in ``streams/`` or ``connectors/``.
"""

from __future__ import annotations

from streams.core.catalog import default_catalog


def _topic(name: str) -> str:
    default_catalog().topic(name)  # raises FatalError for a name the catalogue lacks
    return name


# raw sources
CLICKSTREAM = _topic("cust.clickstream.raw.v1")
MOBILE = _topic("cust.mobile.raw.v1")
SOCIAL = _topic("cust.social.raw.v1")
MESSAGING = _topic("cust.messaging.raw.v1")
FULFILLMENT = _topic("cust.fulfillment.raw.v1")
RAW_SOURCES = (CLICKSTREAM, MOBILE, SOCIAL, MESSAGING, FULFILLMENT)
# reference data and commands
IDENTITY = _topic("cust.identity.raw.v1")
CATALOG = _topic("cust.catalog.products.v1")
ERASURE = _topic("cust.erasure.v1")
# derived
STITCHED = _topic("cust.touchpoints.stitched.v1")
TOUCHPOINTS = _topic("cust.touchpoints.v1")
JOURNEYS = _topic("cust.journeys.v1")
ATTRIBUTION = _topic("cust.attribution.v1")
SCORES = _topic("cust.customer-scores.v1")
PROFILES = _topic("cust.profiles.v1")
# activation (Faust agents) and the requests they answer
AUDIENCES = _topic("cust.audiences.v1")
CHANNEL_DECISIONS = _topic("cust.channel-decisions.v1")
MESSAGE_REQUESTS = _topic("cust.message-requests.v1")
MESSAGE_DECISIONS = _topic("cust.message-decisions.v1")
RECOMMENDATIONS = _topic("cust.recommendations.v1")
