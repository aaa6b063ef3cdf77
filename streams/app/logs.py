"""How journeybus processes log: one format, the level from the command line."""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    """Log at ``level`` (debug, info, warning, ...) to standard error, timestamped."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
