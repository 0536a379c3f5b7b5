"""experiments/bench_speed.py's table: ratios of the median runs and of each model's fastest turn."""

import importlib.util

from conftest import REPO


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_speed", REPO / "experiments" / "bench_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_run(total: float, turns: list[float] | None) -> dict:
    stages = {s: {"cpu_seconds": total / 5} for s in ("load", "fit", "rank", "eval", "write")}
    run = {"n_alerts": 100_000, "total_s": total, "peak_rss": 2**30, "stages": stages}
    return run if turns is None else {**run, "totals_s": turns}


def test_table_gives_the_median_and_the_fastest_turn_ratio():
    bench = bench_module()
    repeated = {"case": "sim-100k", "models": {"rarity": model_run(1.0, [1.4, 1.0, 0.8]),
                                                "car": model_run(5.0, [4.0, 5.0, 6.0])}}
    single = {"case": "fox", "models": {"rarity": model_run(2.0, None), "car": model_run(3.0, None)}}
    rows = [line.split(" | ") for line in bench.markdown([repeated, single]).splitlines()[2:]]
    assert [row[-3:] for row in rows] == [["5.0x", "5.0x", "5.0x |"], ["1.5x", "1.5x", "1.5x |"]]
    repeated["models"]["car"]["totals_s"] = [3.2, 5.0, 6.0]
    assert bench.markdown([repeated]).splitlines()[2].endswith("| 5.0x | 5.0x | 4.0x |")
