"""Channel grouping: GA4's default channel group rules, plus the non-web channels.

``group_channel(source, medium, campaign)`` applies the GA4 rules in their
documented order. ``traffic_source`` derives source/medium for
web traffic the way GA4 does: UTM parameters first, then ad click ids, then
the referrer, else (direct)/(none).

The rules and the source categories are data, in ``ga4_rules``; this module
only interprets them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from streams.enrich import ga4_rules

# Channel names used across journeybus (GA4 names where GA4 has the channel).
DIRECT = "Direct"
EMAIL = "Email"
SMS = "SMS"
PUSH = "Mobile Push Notifications"
MOBILE_APP = "Mobile App"
SOCIAL_POST = "Social Post"
STORE = "Store"
FULFILMENT = "Fulfilment"
ORGANIC_SOCIAL = "Organic Social"
UNASSIGNED = ga4_rules.UNASSIGNED

# GA4's default channel groups, in rule order (``group_channel`` returns one of them).
CHANNEL_GROUPS = (*(name for name, _ in ga4_rules.RULES), UNASSIGNED)

PUBLIC_SUFFIXES = frozenset(ga4_rules.PUBLIC_SUFFIXES)
_CATEGORIES = {name: frozenset(entries) for name, entries in ga4_rules.SOURCE_CATEGORIES.items()}
_AI = frozenset(ga4_rules.AI_ASSISTANTS)
_PATTERNS: dict[str, re.Pattern[str]] = {}


def _site(source: str) -> str:
    """Normalise a source or host name: lower case, no www./m./mobile. prefix."""
    s = source.strip().lower()
    for prefix in ("www.", "m.", "mobile."):
        if s.startswith(prefix):
            s = s[len(prefix) :]
    return s


def _registered(s: str) -> str | None:
    """``s`` without its public suffix (google.co.uk → google); None if it has none."""
    parts = s.split(".")
    if len(parts) >= 3 and ".".join(parts[-2:]) in PUBLIC_SUFFIXES:
        return ".".join(parts[:-2])
    if len(parts) >= 2 and parts[-1].isalpha():
        return ".".join(parts[:-1])
    return None


def category_entry(source: str, entries: frozenset[str]) -> str | None:
    """The entry of a source category that ``source`` is: the entry itself, or the
    entry and a public suffix (``google.co.uk`` → ``google``); never a subdomain
    (``mail.google.com`` is no search engine)."""
    s = _site(source)
    if s in entries:
        return s
    bare = _registered(s)
    return bare if bare in entries else None


def source_category(source: str | None) -> str | None:
    """GA4's source category of a source (``SOURCE_CATEGORY_SEARCH``, ...), or
    ``AI_ASSISTANT`` for an AI assistant (GA4 has no such category: Referral there),
    or None."""
    if not source:
        return None
    for name, entries in _CATEGORIES.items():
        if category_entry(source, entries) is not None:
            return name
    if _site(source) in _AI:
        return "AI_ASSISTANT"
    return None


def _holds(condition: ga4_rules.Condition, fields: dict[str, str]) -> bool:
    if isinstance(condition, dict):
        (how, parts), *_ = condition.items()
        results = (_holds(part, fields) for part in parts)
        return all(results) if how == "all" else any(results)
    field_name, operator, argument = condition
    value = fields[field_name]
    if operator == "exactly":
        return value == argument
    if operator == "one_of":
        return value in argument
    if operator == "contains":
        return argument in value
    if operator == "ends_with":
        return value.endswith(argument)
    if operator == "matches":
        pattern = _PATTERNS.get(argument)
        if pattern is None:
            pattern = _PATTERNS[argument] = re.compile(argument, re.I)
        return pattern.fullmatch(value) is not None
    if operator == "category":
        return bool(value) and category_entry(value, _CATEGORIES[argument]) is not None
    raise ValueError(f"unknown operator {operator!r} in the GA4 rules")


def group_channel(source: str | None, medium: str | None, campaign: str | None = None) -> str:
    """The GA4 default channel group of a session's source, medium and campaign name
    (the first rule of ``ga4_rules.RULES`` that holds)."""
    fields = {
        "source": (source or "(direct)").strip().lower(),
        "medium": (medium or "(none)").strip().lower(),
        "campaign": (campaign or "").strip().lower(),
    }
    for channel, condition in ga4_rules.RULES:
        if _holds(condition, fields):
            return channel
    return UNASSIGNED


@dataclass(frozen=True)
class TrafficSource:
    source: str
    medium: str
    campaign: str | None = None


def host_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url if "//" in url else f"//{url}").hostname
    except ValueError:
        return None
    return host.lower() if host else None


def traffic_source(
    campaign: dict | None, referrer: str | None, own_hosts: frozenset[str] = frozenset()
) -> TrafficSource:
    """GA4's source/medium of a web hit: UTM tags, then click ids, then the referrer.

    A referrer on one of ``own_hosts`` is internal navigation: (direct)/(none).
    """
    campaign = campaign or {}
    if campaign.get("source") or campaign.get("medium"):
        return TrafficSource(
            campaign.get("source") or "(not set)",
            campaign.get("medium") or "(not set)",
            campaign.get("name"),
        )
    if campaign.get("click_id"):  # collectors fill it from Google's click ids only
        return TrafficSource("google", "cpc", campaign.get("name"))
    host = host_of(referrer)
    if not host or host in own_hosts or _site(host) in own_hosts:
        return TrafficSource("(direct)", "(none)", campaign.get("name"))
    site = _site(host)
    engine = category_entry(site, _CATEGORIES["SOURCE_CATEGORY_SEARCH"])
    if engine is not None:
        return TrafficSource(engine_name(engine), "organic")
    return TrafficSource(site, "referral")


def engine_name(entry: str) -> str:
    """The name GA4 gives a search engine's traffic: ``search.yahoo`` → ``yahoo``."""
    last = entry.rsplit(".", 1)[-1]
    return last if last in _CATEGORIES["SOURCE_CATEGORY_SEARCH"] else entry


def web_channel(
    campaign: dict | None, referrer: str | None, own_hosts: frozenset[str] = frozenset()
) -> str:
    """Channel group of a web or app hit from its campaign tags and referrer."""
    ts = traffic_source(campaign, referrer, own_hosts)
    return group_channel(ts.source, ts.medium, ts.campaign)
