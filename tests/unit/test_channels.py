"""GA4 default channel group rules, one example (or more) per rule, in rule order."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.enrich import channels, ga4_rules
from streams.enrich.channels import group_channel, traffic_source, web_channel

OWN = frozenset({"shop.example.com"})


CASES = [
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
    # GA4's own answers where journeybus once differed
    ("IGShopping", "Social", None, "Organic Shopping"),
    ("mail.google.com", "referral", None, "Referral"),
    ("com.google.android.gm", "referral", None, "Referral"),
    ("docs.google.com", "referral", None, "Referral"),
    ("chatgpt.com", "referral", None, "Referral"),
    ("perplexity.ai", "referral", None, "Referral"),
    ("google.co.uk", "referral", None, "Organic Search"),
    ("images.google.com", "referral", None, "Organic Search"),
    ("l.facebook.com", "referral", None, "Organic Social"),
    ("amazon.de", "cpc", None, "Paid Shopping"),
]


def test_every_rule_has_a_case():
    assert {expected for *_, expected in CASES} == set(channels.CHANNEL_GROUPS)


@pytest.mark.parametrize("source,medium,campaign,expected", CASES)
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


@pytest.mark.parametrize("category,entries", sorted(ga4_rules.SOURCE_CATEGORIES.items()))
def test_every_category_entry_is_found_as_a_host_and_never_as_a_subdomain(category, entries):
    """Dotted entries (so.com) once raised StopIteration in the referrer path and
    halted the normalise stage; every entry must classify, name itself, and not
    claim its subdomains (mail.google.com is not google)."""
    for entry in entries:
        if " " in entry:
            continue  # a utm_source value, not a host name
        hosts = [entry] if "." in entry else [f"{entry}.com", f"www.{entry}.co.uk"]
        for host in hosts:
            assert channels.source_category(host) == category, host
            web_channel(None, f"https://{host}/p?q=1")  # must not raise
        assert channels.source_category(f"mail.{entry}.com") != category


@pytest.mark.parametrize(
    "referrer,source,category",
    [
        ("https://chatgpt.com/", "chatgpt.com", "AI_ASSISTANT"),
        ("https://www.perplexity.ai/search", "perplexity.ai", "AI_ASSISTANT"),
        ("https://mail.google.com/mail/u/0", "mail.google.com", None),
    ],
)
def test_assistants_and_google_apps_are_referrals_with_their_host(referrer, source, category):
    found = traffic_source(None, referrer)
    assert (found.source, found.medium) == (source, "referral")
    assert channels.source_category(found.source) == category
    assert web_channel(None, referrer) == "Referral"


def test_dotted_search_entries_name_the_engine():
    assert traffic_source(None, "https://so.com/s?q=jeans").source == "so.com"
    assert traffic_source(None, "https://images.google.com/").source == "google"


@given(st.text(max_size=80))
def test_any_referrer_text_gets_a_channel(text):
    assert web_channel(None, text) in channels.CHANNEL_GROUPS
    assert web_channel(None, f"https://{text}/") in channels.CHANNEL_GROUPS
