"""The layout holds: one direction between layers, no import cycles, imports at the top,
topic names in one module, settings by one route (``tests.layers``); and every module
imports on its own, whichever is imported first."""

from __future__ import annotations

import os
import random
import subprocess
import sys

from tests.layers import ROOT, modules, problems

IMPORT_EACH_FIRST = """
import importlib, sys
from prometheus_client import REGISTRY
names = sys.argv[1:]
for name in names:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("streams", "connectors")]:
        del sys.modules[loaded]  # each one imported first, as a fresh process would
    for collector in list(REGISTRY._collector_to_names):  # metrics declared again
        REGISTRY.unregister(collector)
    importlib.import_module(name)
print(len(names))
"""


def test_the_layers_hold():
    assert problems() == []


def test_every_module_imports_first_in_any_order():
    names = sorted(modules())
    orders = [
        names,
        names[::-1],
        *(random.Random(seed).sample(names, len(names)) for seed in (1, 2)),
    ]
    for order in orders:
        done = subprocess.run(
            [sys.executable, "-c", IMPORT_EACH_FIRST, *order],
            cwd=ROOT,
            # a Faust app module (streams.activation.agents) is configured when imported
            # and needs a cluster's address (it connects only when a worker starts)
            env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert int(done.stdout.split()[-1]) == len(names)
