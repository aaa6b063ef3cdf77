"""``journeybus connector new`` writes a source that passes its own contract test as written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.broker


def _run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, **kw)


def test_a_scaffolded_connector_passes_its_contract_suite(bootstrap, tmp_path):
    package, tests = tmp_path / "acme_connectors", tmp_path / "acme_tests"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    where = ["--dir", str(package), "--tests", str(tests)]
    new = _run(
        "streams.app.cli", "connector", "new", "crm-contacts", "--topic", "cust.messaging.raw.v1",
        *where, "--package", "acme_connectors", env=env, timeout=60, check=True,
    )  # fmt: skip
    assert "crm_contacts.py" in new.stdout
    (package / "__init__.py").write_text("")
    source = (package / "crm_contacts.py").read_text()
    assert '@source("crm-contacts", topic=MESSAGING)' in source

    run = _run(
        "pytest", "-q", "-p", "no:cacheprovider", str(tests),
        timeout=300, cwd=tmp_path, env={**env, "PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "3 passed" in run.stdout

    again = _run("streams.app.cli", "connector", "new", "crm-contacts", *where, env=env, timeout=60)
    assert again.returncode != 0 and "exists" in again.stderr
