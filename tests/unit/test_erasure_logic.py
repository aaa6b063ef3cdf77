"""Which data an erasure request hides, and in which order requests are applied."""

from streams.runtime.erasures import ErasureList, new_request, request_keys, request_nodes


def _request(opt_out: bool = False, at: int = 1_000, key: str = "c1"):
    return new_request(
        key,
        [("user_id", key), ("anonymous_id", "a1"), ("email_hash", "h1")],
        requested_at=at,
        opt_out=opt_out,
    )


def test_request_keys_hold_each_identifier_as_a_key_and_as_is():
    keys = request_keys(_request())
    assert keys == {"c1", "a1", "email:h1", "h1"}
    assert sorted(request_nodes(_request())) == [
        "anonymous_id:a1",
        "email_hash:h1",
        "user_id:c1",
    ]


def test_data_received_before_the_request_is_hidden_later_data_is_not():
    erasures = ErasureList()
    assert not erasures.hides("c1", 0)
    erasures.add(_request(at=1_000))
    assert erasures.hides("c1", 999)
    assert erasures.hides("email:h1", 999)
    assert not erasures.hides("c1", 1_000)  # a returning customer starts again
    assert not erasures.hides("someone-else", 0)
    assert erasures.hides_any(["x", None, "a1"], 10)
    assert not erasures.hides_any(["x", None], 10)


def test_an_opt_out_hides_everything_of_the_customer():
    erasures = ErasureList()
    erasures.add(_request(opt_out=True, at=1_000))
    assert erasures.hides("c1", 5_000_000)
    assert erasures.hides("a1", None)


def test_a_later_request_moves_the_time_forward_and_an_opt_out_stays():
    erasures = ErasureList()
    erasures.add(_request(opt_out=True, at=1_000))
    erasures.add(_request(opt_out=False, at=2_000))
    assert erasures.keys["c1"].requested_at == 2_000
    assert erasures.keys["c1"].opt_out


def test_requests_are_numbered_in_order_and_a_repeated_request_counts_once():
    seen = []
    erasures = ErasureList()
    erasures.on_request.append(lambda r: seen.append(r["request_id"]))
    first, second = _request(key="c1"), _request(key="c2")
    assert erasures.add(first)
    assert not erasures.add(first)  # a producer retry wrote it twice
    assert erasures.add(second)
    assert len(erasures) == 2
    assert [r["request_id"] for r in erasures.since(1)] == [second["request_id"]]
    assert seen == [first["request_id"], second["request_id"]]
