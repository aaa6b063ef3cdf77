"""Channel grouping: GA4's default channel group rules, plus the non-web channels.

``group_channel(source, medium, campaign)`` applies the GA4 rules in their
documented order (Direct, Cross-network, Paid Shopping, Paid Search, Paid
Social, Paid Video, Display, Paid Other, Organic Shopping, Organic Social,
Organic Video, Organic Search, Referral, Email, Affiliates, Audio, SMS, Mobile
Push Notifications, Unassigned). ``traffic_source`` derives source/medium for
web traffic the way GA4 does: UTM parameters first, then ad click ids, then
the referrer, else (direct)/(none).

The site lists are GA4's source categories (shopping, search, social, video),
abridged to the sites that matter for retail traffic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

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
UNASSIGNED = "Unassigned"

# GA4's default channel groups, in rule order (``group_channel`` returns one of them).
CHANNEL_GROUPS = (
    DIRECT,
    "Cross-network",
    "Paid Shopping",
    "Paid Search",
    "Paid Social",
    "Paid Video",
    "Display",
    "Paid Other",
    "Organic Shopping",
    ORGANIC_SOCIAL,
    "Organic Video",
    "Organic Search",
    "Referral",
    EMAIL,
    "Affiliates",
    "Audio",
    SMS,
    PUSH,
    UNASSIGNED,
)

SEARCH_SITES = {
    "google",
    "bing",
    "yahoo",
    "baidu",
    "duckduckgo",
    "yandex",
    "ecosia",
    "naver",
    "seznam",
    "qwant",
    "startpage",
    "ask",
    "aol",
    "search-results",
    "sogou",
    "daum",
    "so.com",
    "brave",
    "perplexity",
    "chatgpt.com",
    "copilot.microsoft.com",
}
SOCIAL_SITES = {
    "facebook",
    "fb",
    "instagram",
    "ig",
    "tiktok",
    "twitter",
    "x",
    "t.co",
    "linkedin",
    "lnkd.in",
    "pinterest",
    "reddit",
    "snapchat",
    "youtube-social",
    "whatsapp",
    "messenger",
    "threads",
    "tumblr",
    "vk",
    "weibo",
    "quora",
    "discord",
    "telegram",
    "line",
    "meta",
    "l.facebook.com",
    "lm.facebook.com",
    "l.instagram.com",
    "bsky",
}
VIDEO_SITES = {"youtube", "vimeo", "twitch", "dailymotion", "netflix", "tiktok-video", "wistia"}
SHOPPING_SITES = {
    "amazon",
    "ebay",
    "etsy",
    "walmart",
    "shopping.google.com",
    "google shopping",
    "idealo",
    "pricerunner",
    "shopzilla",
    "mercadolibre",
    "alibaba",
    "aliexpress",
    "zalando",
    "rakuten",
    "shopify",
    "stripe",
    "klarna",
}
PAID_MEDIUM = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$", re.I)
SHOP_CAMPAIGN = re.compile(r"^(.*(([^a-df-z]|^)shop|shopping).*)$", re.I)
DISPLAY_MEDIUM = {"display", "banner", "expandable", "interstitial", "cpm"}
SOCIAL_MEDIUM = {"social", "social-network", "social-media", "sm", "social network", "social media"}
EMAIL_VALUE = re.compile(r"^(email|e-mail|e_mail|e mail)$", re.I)
REFERRAL_MEDIUM = {"referral", "app", "link"}
# Paid ad click ids (auto-tagging) and the source/medium GA4 gives them. fbclid is
# not one: Facebook adds it to organic links too.
PAID_CLICK_IDS = {
    "gclid": ("google", "cpc"),
    "dclid": ("google", "cpm"),
    "wbraid": ("google", "cpc"),
    "gbraid": ("google", "cpc"),
    "msclkid": ("bing", "cpc"),
}


def _site(source: str) -> str:
    """Normalise a source or host name: lower case, no www/m., no TLD for known sites."""
    s = source.strip().lower()
    for prefix in ("www.", "m.", "mobile."):
        if s.startswith(prefix):
            s = s[len(prefix) :]
    return s


def site_entry(source: str, sites: set[str]) -> str | None:
    """The entry of ``sites`` that a source or host name is: the whole name, a dotted
    entry it ends with (``copilot.microsoft.com``, ``so.com``), or one of its labels
    before the top-level domain (``google.co.uk`` → ``google``); None if none.

    Every list entry is reachable by exactly these rules, dotted or not, so no
    entry can match a host without this function saying which one.
    """
    s = _site(source)
    if s in sites:
        return s
    parts = s.split(".")
    for i in range(1, len(parts) - 1):
        suffix = ".".join(parts[i:])
        if suffix in sites:
            return suffix
    return next((part for part in parts[:-1] if part in sites), None)


def _matches(source: str, sites: set[str]) -> bool:
    return site_entry(source, sites) is not None


def group_channel(source: str | None, medium: str | None, campaign: str | None = None) -> str:
    """The GA4 default channel group of a session's source, medium and campaign name."""
    src = (source or "(direct)").strip().lower()
    med = (medium or "(none)").strip().lower()
    camp = (campaign or "").strip().lower()
    paid = bool(PAID_MEDIUM.match(med))
    shopping = _matches(src, SHOPPING_SITES) or bool(camp and SHOP_CAMPAIGN.match(camp))
    if src == "(direct)" and med in ("(not set)", "(none)"):
        return DIRECT
    if "cross-network" in camp:
        return "Cross-network"
    if shopping and paid:
        return "Paid Shopping"
    if _matches(src, SEARCH_SITES) and paid:
        return "Paid Search"
    if _matches(src, SOCIAL_SITES) and paid:
        return "Paid Social"
    if _matches(src, VIDEO_SITES) and paid:
        return "Paid Video"
    if med in DISPLAY_MEDIUM:
        return "Display"
    if paid:
        return "Paid Other"
    if shopping:
        return "Organic Shopping"
    if _matches(src, SOCIAL_SITES) or med in SOCIAL_MEDIUM:
        return ORGANIC_SOCIAL
    if _matches(src, VIDEO_SITES) or "video" in med:
        return "Organic Video"
    if _matches(src, SEARCH_SITES) or med == "organic":
        return "Organic Search"
    if med in REFERRAL_MEDIUM:
        return "Referral"
    if EMAIL_VALUE.match(src) or EMAIL_VALUE.match(med):
        return EMAIL
    if med == "affiliate":
        return "Affiliates"
    if med == "audio":
        return "Audio"
    if src == "sms" or med == "sms":
        return SMS
    if med.endswith("push") or "mobile" in med or "notification" in med or src == "firebase":
        return PUSH
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
    engine = site_entry(site, SEARCH_SITES)
    if engine is not None:
        return TrafficSource(engine, "organic")
    return TrafficSource(site, "referral")


def web_channel(
    campaign: dict | None, referrer: str | None, own_hosts: frozenset[str] = frozenset()
) -> str:
    """Channel group of a web or app hit from its campaign tags and referrer."""
    ts = traffic_source(campaign, referrer, own_hosts)
    return group_channel(ts.source, ts.medium, ts.campaign)
