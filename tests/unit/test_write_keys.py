"""Collector write keys as configuration keeps them: SHA-256 digests."""

import hashlib

import pytest
from click.testing import CliRunner

from connectors.sources.http_collector import configured_digest, hash_write_key
from streams.app.cli import main


def test_a_hashed_key_and_its_plain_form_give_the_same_digest():
    hashed = hash_write_key("s3cret-web-key")
    assert hashed == "sha256:" + hashlib.sha256(b"s3cret-web-key").hexdigest()
    assert configured_digest(hashed) == configured_digest("s3cret-web-key")
    assert "s3cret" not in hashed


@pytest.mark.parametrize("bad", ["sha256:", "sha256:abc", "sha256:" + "zz" * 32])
def test_a_malformed_digest_is_refused_at_start(bad):
    with pytest.raises(ValueError, match="64 hex digits"):
        configured_digest(bad)


def test_hash_key_command_prints_the_configuration_form():
    result = CliRunner().invoke(main, ["hash-key", "s3cret-web-key"])
    assert result.exit_code == 0
    assert result.output.strip() == hash_write_key("s3cret-web-key")
