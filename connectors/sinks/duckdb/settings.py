"""The DuckDB sink's settings (``CONNECTORS__DUCKDB__*``), for the sink and its readers."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from connectors.settings import ConnectorSettings, connector_config
from streams.core.settings import Settings

DATABASE_FILE = "journeybus.duckdb"
SNAPSHOT_FILE = "journeybus-read.duckdb"


class DuckDBSinkSettings(ConnectorSettings):
    """``CONNECTORS__DUCKDB__*``."""

    model_config = connector_config("duckdb")

    # default: journeybus.duckdb and journeybus-read.duckdb in JOURNEYBUS__RUNTIME_DIR
    database: Path | None = None
    snapshot: Path | None = None
    # A read snapshot at most every snapshot_interval_s, and at least 1/snapshot_max_share
    # times the last copy's duration after it: a snapshot copies the whole file, so as
    # the database grows they space out instead of taking over the sink. (Not the
    # checkpoint's: it writes what changed, which spacing does not reduce, and one
    # slow checkpoint spaced the next snapshots out by 5 s at 500 events/s.)
    snapshot_interval_s: float = 0.5
    snapshot_max_share: float = 0.2
    batch_max_rows: int = 20_000
    batch_max_ms: int = 200
    group_id: str = "journeybus-duckdb-sink"
    # PII policy per tag: keep, hash (salted SHA-256, joins still work) or drop (NULL)
    pii_direct: str = "hash"
    pii_pseudonymous: str = "keep"
    pii_salt: SecretStr = SecretStr("journeybus-local")
    # A row of a forgotten customer produced up to this long after the erasure request
    # was made by a stage that had not applied it yet is kept out too.
    erasure_settle_ms: int = 10_000
    # After erasure requests were applied the database file is rewritten (deleted rows
    # stay in DuckDB's blocks until then), at most once per this many seconds.
    erasure_rewrite_interval_s: float = 30.0

    def resolved(self, settings: Settings) -> DuckDBSinkSettings:
        """These settings with the database and snapshot paths filled in (under the
        runtime directory unless they were set)."""
        return self.model_copy(
            update={
                "database": self.database or settings.runtime_dir / DATABASE_FILE,
                "snapshot": self.snapshot or settings.runtime_dir / SNAPSHOT_FILE,
            }
        )
