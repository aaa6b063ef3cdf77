"""Connector configuration from the environment: ``CONNECTORS__<NAME>__<KEY>``."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


def connector_config(name: str) -> SettingsConfigDict:
    """Settings config reading ``CONNECTORS__<NAME>__<KEY>`` (name upper-cased, - as _)."""
    env = name.upper().replace("-", "_")
    return SettingsConfigDict(env_prefix=f"CONNECTORS__{env}__", extra="ignore")


class ConnectorSettings(BaseSettings):
    """Base of every connector's settings; subclasses set ``model_config``."""

    model_config = SettingsConfigDict(extra="ignore")
