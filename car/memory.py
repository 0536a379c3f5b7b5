"""Memory guard: stop before fitting when the input would not fit in memory, with one line.

The estimate is linear in the number of alerts (batch plus history), from the peaks that
experiments/bench_speed.py measured (docs/performance.md): 0.69 GB at 100,000 simulated
alerts, 2.09 GB at 1,000,000, 3.0 GB for the 1,799,539 AIT-ADS alerts. ``BYTES_PER_ALERT``
and ``BASE_BYTES`` bound those from above, so the guard errs on the side of stopping. Inputs
of very many distinct values can exceed it (session 14, 300,000 alerts: a unique value per
alert in one attribute 1.47 GB, 77,880 alert types 1.53 GB, against the estimate's 1.30 GB).
"""

from __future__ import annotations

from pathlib import Path

from car.errors import ConfigError, DataError, is_number

BASE_BYTES = 0.7e9  # interpreter, torch, pandas and the first tables
BYTES_PER_ALERT = 2_000  # measured peaks: 1.4-1.6 kB per alert beyond the base
GB = 1e9


def estimated_peak_bytes(n_alerts: int) -> float:
    """Estimated peak resident memory (bytes) of a CAR run over ``n_alerts`` alerts."""
    return BASE_BYTES + BYTES_PER_ALERT * n_alerts


def available_bytes(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    """Memory the kernel can give this process now (MemAvailable), or None where unknown."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(n_alerts: int, limit_gb: float | None) -> None:
    """Raise a one-line DataError if ``n_alerts`` would exceed the memory limit.

    limit_gb: the configured ``memory_limit_gb``; None means the memory available now.
    """
    if limit_gb is not None and not (is_number(limit_gb) and limit_gb > 0):
        raise ConfigError(f"memory_limit_gb={limit_gb!r} must be a positive number of GB, or null for the memory available")
    limit = limit_gb * GB if limit_gb is not None else available_bytes()
    if limit is None:
        return
    need = estimated_peak_bytes(n_alerts)
    if need > limit:
        source = "memory_limit_gb" if limit_gb is not None else "available memory"
        fits = int((limit - BASE_BYTES) / BYTES_PER_ALERT)
        fix = (f"split the input by time into parts of at most {fits:,} alerts, or raise memory_limit_gb" if fits > 0
               else f"any run needs about {BASE_BYTES / GB:.1f} GB: raise memory_limit_gb")
        raise DataError(f"{n_alerts:,} alerts need about {need / GB:.1f} GB, above the {source} of "
                        f"{limit / GB:.3g} GB; {fix}")
