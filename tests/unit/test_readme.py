"""The README stands alone in a clone: the files it links exist, and its topics table
lists every catalogue topic (dead-letter topics are one family, described apart)."""

from __future__ import annotations

import re
from pathlib import Path

from streams.core.catalog import default_catalog

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_readme_links_only_files_in_the_repository():
    linked = set(re.findall(r"\]\(((?!https?://|#)[^)\s]+)\)", README))
    assert linked, "no relative links found"
    assert not [link for link in linked if not (ROOT / link).exists()]
    assert "../shared" not in README


def test_the_topics_table_lists_every_catalogue_topic_once():
    rows = re.findall(r"^\| `(cust\.[a-z.-]+\.v\d+)` \|", README, re.M)
    topics = {t for t in default_catalog().topics if not t.endswith(".dlq")}
    assert sorted(rows) == sorted(topics)
