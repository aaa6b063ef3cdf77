"""Regression guard: normalise + enrich against the ceiling, measured in the same run.

A quick run of ``bench.stages``' two measurements on a small pre-loaded
population: the plain confluent-kafka consume → produce ceiling and the
normalise stage with one worker. It fails (exit 1) only when normalise falls
below ``MIN_SHARE`` of the ceiling; a slow or busy machine slows both, so the
ratio holds where an absolute time would not. Recorded runs give normalise
7-10% of the ceiling (bench/RESULTS.md); the bound is a quarter of the lowest,
a regression no noise explains.

Usage: ``python -m bench.guard [CUSTOMERS]`` (``make bench-guard``, run by CI).
"""

from __future__ import annotations

import sys

from bench.stages import ceiling, normalise_workers, preloaded, rate

MIN_SHARE = 0.017


def main(customers: int = 1500) -> int:
    with preloaded(customers) as (bootstrap, root, settings, raw):
        top = rate([ceiling(bootstrap, settings)])
        normalise = rate(normalise_workers(bootstrap, root / "n1", 1, "guard-normalise"))
    share = normalise / top
    verdict = "ok" if share >= MIN_SHARE else "REGRESSION"
    print(
        f"guard: {raw:,} raw events; ceiling {top:,.0f}/s, normalise {normalise:,.0f}/s: "
        f"{share:.3f} of the ceiling (bound {MIN_SHARE}): {verdict}"
    )
    return 0 if share >= MIN_SHARE else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1500))
