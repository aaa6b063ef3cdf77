"""Secrets (a database password, Kafka's SASL password, collector write keys) never
appear in logs or in the settings' repr, even when connecting fails."""

from __future__ import annotations

import logging
import threading

import pytest

from connectors.sources.http_collector import CollectorSettings, HttpCollector, hash_write_key
from connectors.sources.postgres_fulfillment import FulfillmentSettings, PostgresFulfillmentSource
from connectors.testing import Running
from streams.core.settings import KafkaSettings, Settings

PASSWORD = "pa55-w0rd-never-logged"
WRITE_KEY = "wk-never-logged-4242"

pytestmark = pytest.mark.broker


def test_settings_repr_hides_secrets():
    pg = FulfillmentSettings(dsn=f"postgresql://journeybus:{PASSWORD}@127.0.0.1:5432/test")
    kafka = KafkaSettings(sasl_username="bus", sasl_password=PASSWORD)
    for settings in (pg, kafka):
        assert PASSWORD not in repr(settings) and PASSWORD not in str(settings)
    assert kafka.confluent_config("h:9092")["sasl.password"] == PASSWORD  # still usable


def test_a_failing_database_connection_logs_no_password(bootstrap, tmp_path, caplog):
    # a port nothing listens on: the source logs its connection error and retries
    conf = FulfillmentSettings(
        dsn=f"postgresql://journeybus:{PASSWORD}@127.0.0.1:1/test", retry_s=0.1
    )
    source = PostgresFulfillmentSource(Settings(runtime_dir=tmp_path), bootstrap, conf)
    stop = threading.Event()
    with caplog.at_level(logging.DEBUG):
        thread = threading.Thread(target=source.run, args=(stop,), daemon=True)
        thread.start()
        for _ in range(50):
            if "cannot connect" in caplog.text:
                break
            stop.wait(0.1)
        stop.set()
        thread.join(10)
    assert "cannot connect" in caplog.text  # it did log the failure
    assert PASSWORD not in caplog.text


def test_the_collector_logs_no_write_key(bootstrap, tmp_path, caplog):
    import httpx

    conf = CollectorSettings(port=0, write_keys={hash_write_key(WRITE_KEY): "web"})
    with caplog.at_level(logging.DEBUG):
        app = HttpCollector(Settings(runtime_dir=tmp_path), bootstrap, conf)
        running = Running(app)
        try:
            assert app.started.wait(30)
            url = f"http://127.0.0.1:{app.port}/v1/batch"
            bad = httpx.post(url, json={"batch": []}, auth=(WRITE_KEY + "x", ""), timeout=10)
            assert bad.status_code == 401 and WRITE_KEY not in bad.text
        finally:
            running.stop()
    assert WRITE_KEY not in caplog.text
    assert WRITE_KEY not in repr(conf)
