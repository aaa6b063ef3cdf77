"""Identity graph: groups, deterministic customer keys, idempotent evidence."""

from streams.core.keys import hash_contact, node
from streams.identity.graph import IdentityGraph


def test_anonymous_id_alone_is_its_own_key():
    g = IdentityGraph()
    g.link([node("anonymous_id", "a1")])
    assert g.customer_key(node("anonymous_id", "a1")) == "a1"
    assert g.customer_key(node("anonymous_id", "unknown")) is None


def test_user_id_names_the_group_whatever_the_order_of_evidence():
    for order in (
        [("anonymous_id", "a1"), ("user_id", "c9")],
        [("user_id", "c9"), ("anonymous_id", "a1")],
    ):
        g = IdentityGraph()
        g.link([node(*pair) for pair in order])
        assert g.customer_key(node("anonymous_id", "a1")) == "c9"


def test_transitive_links_join_groups_and_pick_the_strongest_identifier():
    g = IdentityGraph()
    g.link([node("anonymous_id", "a1"), node("device_id", "d1")])
    assert g.customer_key(node("anonymous_id", "a1")) == "d1"  # device before anonymous
    g.link([node("email_hash", "h"), node("device_id", "d1")])
    assert g.customer_key(node("anonymous_id", "a1")) == "email:h"
    g.link([node("email_hash", "h"), node("user_id", "c2")])
    assert {
        g.customer_key(node(k, v))
        for k, v in [("anonymous_id", "a1"), ("device_id", "d1"), ("email_hash", "h")]
    } == {"c2"}


def test_two_user_ids_in_one_group_resolve_to_the_smallest():
    g = IdentityGraph()
    g.link([node("user_id", "c5"), node("email_hash", "h")])
    g.link([node("user_id", "c3"), node("email_hash", "h")])
    assert g.customer_key(node("user_id", "c5")) == "c3"


def test_applying_the_same_evidence_twice_changes_nothing():
    g = IdentityGraph()
    assert g.link([node("anonymous_id", "a"), node("user_id", "c")]) is True
    assert g.link([node("anonymous_id", "a"), node("user_id", "c")]) is False
    assert len(g) == 2


def test_empty_identifiers_are_ignored():
    g = IdentityGraph()
    assert g.link([node("anonymous_id", "")]) is False


def test_contacts_are_hashed_normalised():
    assert hash_contact(" Jo@Example.org ") == hash_contact("jo@example.org")
    assert len(hash_contact("x")) == 64


def test_forget_removes_the_whole_group_and_nothing_else():
    g = IdentityGraph()
    g.link([node("anonymous_id", "a1"), node("user_id", "c1")])
    g.link([node("email_hash", "h1"), node("user_id", "c1")])
    g.link([node("anonymous_id", "a2"), node("user_id", "c2")])
    assert g.group(node("anonymous_id", "a1")) == [
        node("anonymous_id", "a1"),
        node("email_hash", "h1"),
        node("user_id", "c1"),
    ]
    removed = g.forget([node("email_hash", "h1")])
    assert removed == [node("anonymous_id", "a1"), node("email_hash", "h1"), node("user_id", "c1")]
    assert g.customer_key(node("anonymous_id", "a1")) is None
    assert g.customer_key(node("user_id", "c1")) is None
    assert g.customer_key(node("anonymous_id", "a2")) == "c2"
    assert g.forget([node("user_id", "unknown")]) == []
    # new evidence after an erasure starts a new group
    g.link([node("anonymous_id", "a1")])
    assert g.customer_key(node("anonymous_id", "a1")) == "a1"


def test_nodes_for_key_reads_the_key_prefix():
    from streams.core.keys import nodes_for_key

    assert nodes_for_key("email:h1") == [node("email_hash", "h1")]
    assert nodes_for_key("handle:@x") == [node("social_handle", "@x")]
    assert set(nodes_for_key("c1")) == {
        node("user_id", "c1"),
        node("anonymous_id", "c1"),
        node("device_id", "c1"),
    }
