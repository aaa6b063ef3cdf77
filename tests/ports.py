"""Ports for tests that start `journeybus up` several times on the same ports.

A port from the kernel's ephemeral range (``free_port``: bind to 0) can be taken
between two runs by any outgoing connection's source port (dozens of broker
clients here), and the restarted child then fails with "Address already in use".
``free_port_block`` picks a block below that range and checks each port by binding
it, which detects any socket holding it, not only listeners.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(size: int) -> int:
    """The first port of ``size`` consecutive free ports below the ephemeral range."""
    top = _ephemeral_start() - size
    for _ in range(200):
        base = random.randrange(20000, top)
        if all(_bindable(port) for port in range(base, base + size)):
            return base
    raise RuntimeError(f"no block of {size} free ports below {top + size}")
