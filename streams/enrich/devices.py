"""User-agent parsing with ua-parser (the maintained uap-core rules), cached.

User agents repeat heavily in clickstream data, so parses are memoised.
"""

from __future__ import annotations

from functools import lru_cache

from ua_parser import parse

BOT_WORDS = ("bot", "crawler", "spider", "slurp", "headless", "lighthouse")


@lru_cache(maxsize=8192)
def parse_device(user_agent: str | None) -> dict | None:
    """{type, os, browser, is_bot} of a user agent; None when there is none."""
    if not user_agent:
        return None
    result = parse(user_agent)
    browser = result.user_agent.family if result.user_agent else "Other"
    os_family = result.os.family if result.os else "Other"
    device = result.device.family if result.device else "Other"
    lowered = user_agent.lower()
    is_bot = device == "Spider" or any(word in lowered for word in BOT_WORDS)
    if is_bot:
        kind = "bot"
    elif (
        device == "iPad"
        or (os_family == "Android" and "mobile" not in lowered)
        or "tablet" in lowered
    ):
        kind = "tablet"
    elif os_family in ("iOS", "Android") or "mobile" in lowered:
        kind = "mobile"
    elif os_family == "Other" and browser == "Other":
        kind = "other"
    else:
        kind = "desktop"
    return {"type": kind, "os": os_family, "browser": browser, "is_bot": is_bot}
