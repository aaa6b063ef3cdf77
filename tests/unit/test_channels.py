"""GA4 default channel group rules, one example (or more) per rule, in rule order."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.enrich import channels
from streams.enrich.channels import group_channel, traffic_source, web_channel

OWN = frozenset({"shop.example.com"})


@pytest.mark.parametrize(
    "source,medium,campaign,expected",
    [
        ("(direct)", "(none)", None, "Direct"),
        ("(direct)", "(not set)", None, "Direct"),
        ("google", "cpc", "spring cross-network push", "Cross-network"),
        ("google", "cpc", "summer-shopping", "Paid Shopping"),
        ("amazon", "ppc", None, "Paid Shopping"),
        ("google", "cpc", "brand", "Paid Search"),
        ("bing", "paid-search", None, "Paid Search"),
        ("google.co.uk", "ppc", None, "Paid Search"),
        ("facebook", "paid_social", None, "Paid Social"),
        ("instagram", "cpc", None, "Paid Social"),
        ("youtube", "cpv", None, "Paid Video"),
        ("criteo", "display", None, "Display"),
        ("adnetwork", "cpm", None, "Display"),
        ("adnetwork", "banner", None, "Display"),
        ("partner", "retargeting", None, "Paid Other"),
        ("ebay", "referral", None, "Organic Shopping"),
        ("newsletter", "link", "shop-the-look", "Organic Shopping"),
        ("instagram", "social", None, "Organic Social"),
        ("m.facebook.com", "referral", None, "Organic Social"),
        ("mastodon", "social-network", None, "Organic Social"),
        ("vimeo", "referral", None, "Organic Video"),
        ("partner", "video", None, "Organic Video"),
        ("duckduckgo", "referral", None, "Organic Search"),
        ("anything", "organic", None, "Organic Search"),
        ("blog.example.org", "referral", None, "Referral"),
        ("partner", "app", None, "Referral"),
        ("newsletter", "email", None, "Email"),
        ("e-mail", "whatever", None, "Email"),
        ("awin", "affiliate", None, "Affiliates"),
        ("spotify", "audio", None, "Audio"),
        ("twilio", "sms", None, "SMS"),
        ("braze", "push", None, "Mobile Push Notifications"),
        ("braze", "mobile", None, "Mobile Push Notifications"),
        ("firebase", "whatever", None, "Mobile Push Notifications"),
        ("partner", "carrier-pigeon", None, "Unassigned"),
    ],
)
def test_ga4_rule(source, medium, campaign, expected):
    assert group_channel(source, medium, campaign) == expected


def test_rule_order_paid_shopping_wins_over_paid_search():
    assert group_channel("google", "cpc", "shopping-feed") == "Paid Shopping"


@pytest.mark.parametrize(
    "campaign,referrer,expected",
    [
        ({"source": "google", "medium": "cpc"}, "https://www.google.com/", "Paid Search"),
        ({"click_id": "Cj0"}, "https://www.google.com/", "Paid Search"),
        (None, "https://www.google.co.uk/search?q=shoes", "Organic Search"),
        (None, "https://www.bing.com/", "Organic Search"),
        (None, "https://l.instagram.com/", "Organic Social"),
        (None, "https://blog.example.org/post", "Referral"),
        (None, None, "Direct"),
        (None, "https://shop.example.com/cart", "Direct"),  # internal navigation
    ],
)
def test_web_traffic_source_from_tags_click_ids_and_referrer(campaign, referrer, expected):
    assert web_channel(campaign, referrer, OWN) == expected


def test_search_referrer_names_the_engine():
    assert traffic_source(None, "https://search.yahoo.com/x").source == "yahoo"
    assert traffic_source(None, "https://www.google.de/").medium == "organic"


SITE_LISTS = {
    "search": channels.SEARCH_SITES,
    "social": channels.SOCIAL_SITES,
    "video": channels.VIDEO_SITES,
    "shopping": channels.SHOPPING_SITES,
}


@pytest.mark.parametrize("name,sites", sorted(SITE_LISTS.items()))
def test_every_site_list_entry_is_found_as_a_referrer_host(name, sites):
    """Dotted entries (chatgpt.com, so.com) once raised StopIteration in the referrer
    path and halted the normalise stage; every entry, as a host and under a
    subdomain, must classify without raising and name itself."""
    for entry in sorted(sites):
        if " " in entry:
            continue  # a utm_source value, not a host name
        host = entry if "." in entry else f"{entry}.com"
        for url in (f"https://{host}/", f"https://www.{host}/p?q=1", f"https://a.b.{host}/"):
            assert channels.site_entry(channels.host_of(url), sites) == entry, url
            web_channel(None, url)  # must not raise


@pytest.mark.parametrize(
    "referrer,source",
    [
        ("https://chatgpt.com/", "chatgpt.com"),
        ("https://so.com/s?q=jeans", "so.com"),
        ("https://copilot.microsoft.com/chats/1", "copilot.microsoft.com"),
    ],
)
def test_dotted_search_entries_name_the_engine(referrer, source):
    assert traffic_source(None, referrer).source == source


@given(st.text(max_size=80))
def test_any_referrer_text_gets_a_channel(text):
    assert web_channel(None, text) in channels.CHANNEL_GROUPS
    assert web_channel(None, f"https://{text}/") in channels.CHANNEL_GROUPS
