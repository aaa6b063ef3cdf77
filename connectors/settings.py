"""Connector configuration from the environment: ``CONNECTORS__<NAME>__<KEY>``."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


def connector_config(name: str) -> SettingsConfigDict:
    """Settings config reading ``CONNECTORS__<NAME>__<KEY>`` (name upper-cased, - as _)."""
    env = name.upper().replace("-", "_")
    return SettingsConfigDict(
        env_prefix=f"CONNECTORS__{env}__", extra="ignore", hide_input_in_errors=True
    )


class ConnectorSettings(BaseSettings):
    """Base of every connector's settings; subclasses set ``model_config``.

    ``topic_prefix`` is put in front of every topic the connector writes (one
    cluster shared by environments, or tests that need topics of their own);
    the schema is still the one of the unprefixed catalogue topic.
    """

    # hide_input_in_errors: a value that fails validation may be a secret (a write key,
    # a password); the error names the field, never echoes the value.
    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)

    topic_prefix: str = ""
    batch_max_records: int = 5000
    poll_interval_s: float = 0.5  # wait after an empty poll
    retry_s: float = 1.0  # back-off after a retriable failure
    ack_timeout_s: float = 30.0  # how long to wait for the broker per attempt
