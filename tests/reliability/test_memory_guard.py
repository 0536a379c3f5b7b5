"""Load: an input too large for the memory limit stops before fitting with one line naming the limit."""

from __future__ import annotations

import pytest

from car.errors import ConfigError, DataError
from car.memory import available_bytes, check_memory, estimated_peak_bytes
from reliability_helpers import assert_clean_failure, run_train

# Peaks measured by experiments/bench_speed.py (docs/performance.md): alerts -> GB.
MEASURED = {100_000: 0.69, 1_000_000: 2.09, 1_799_539: 3.00}


def test_estimate_bounds_every_measured_peak_from_above_within_a_factor_two():
    for alerts, gb in MEASURED.items():
        assert gb * 1e9 <= estimated_peak_bytes(alerts) <= 2 * gb * 1e9


def test_too_many_alerts_for_the_limit_stop_with_one_line_naming_it():
    with pytest.raises(DataError) as err:
        check_memory(3_000_000, limit_gb=4)
    text = str(err.value)
    assert "\n" not in text
    assert "3,000,000 alerts" in text and "memory_limit_gb of 4 GB" in text
    assert "split the input by time into parts of at most 1,650,000 alerts" in text
    # A limit below the fixed cost: no "parts of at most 0 alerts", the fix is to raise it.
    with pytest.raises(DataError, match=r"memory_limit_gb of 0.0001 GB; any run needs about .* GB: raise memory_limit_gb"):
        check_memory(1000, limit_gb=0.0001)


def test_inputs_within_the_limit_pass():
    check_memory(3_000_000, limit_gb=6.8)  # the 3 M load run fits the 6 GB-class target
    check_memory(100_000, limit_gb=1)


def test_default_limit_is_the_memory_available_now(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:    2000000 kB\n")
    assert available_bytes(meminfo) == 2000000 * 1024
    assert available_bytes(tmp_path / "absent") is None
    free = available_bytes()
    assert free is None or free > 0
    if free is not None:
        with pytest.raises(DataError, match="available memory"):
            check_memory(int(free // 1000), limit_gb=None)


@pytest.mark.parametrize("bad", [0, -1, "six", True])
def test_a_bad_limit_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="memory_limit_gb"):
        check_memory(10, limit_gb=bad)


def test_train_stops_before_fitting_when_the_input_exceeds_the_limit(tmp_path):
    out = tmp_path / "run"
    proc = run_train(out, "data=enterprise_sim", "data.n_alerts=300000", "memory_limit_gb=0.9", "logger=none")
    assert_clean_failure(proc, 2, "300,000 alerts need about 1.3 GB", "memory_limit_gb of 0.9 GB")
    assert not (out / "ranked_alerts.csv").exists()
