"""Progress of long steps: throttled log lines, and the lines of a chunked file read, the pattern
search and the ranking solver."""

from __future__ import annotations

import gzip
import logging
import re

import numpy as np
import pytest

import car.progress
from car.data import files, load_alerts
from car.progress import Progress, amount, quantity
from car.ranking import build_graph, collaborative_rank
from car.temporal import ContextTree, PitmanYorTree, find_patterns


@pytest.fixture
def every_update(monkeypatch):
    """Log every update (no wait between lines)."""
    monkeypatch.setattr(car.progress, "LOG_EVERY_S", 0.0)


def progress_lines(caplog, task: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "car.progress" and r.getMessage().startswith(task)]


def test_a_step_logs_at_most_every_interval_and_closes_with_total_and_rate(monkeypatch, caplog):
    clock = iter(np.arange(0.0, 100.0, 1.0))  # one second per call of the clock
    monkeypatch.setattr(car.progress, "monotonic", lambda: next(clock))
    caplog.set_level(logging.INFO, logger="car.progress")
    with Progress("loading x.csv", total=1_000_000, unit="rows") as progress:
        for done in range(1, 13):
            progress.update(done * 50_000, "a note")
    lines = progress_lines(caplog, "loading x.csv")
    assert lines == [
        "loading x.csv: 250.0 k of 1.0 M rows (25%), 50.0 k rows/s; a note",
        "loading x.csv: 500.0 k of 1.0 M rows (50%), 50.0 k rows/s; a note",
        "loading x.csv: done, 600.0 k rows in 13.0 s (46.2 k rows/s); a note",
    ]


def test_a_short_step_logs_nothing_and_a_failed_one_no_closing_line(caplog):
    caplog.set_level(logging.INFO, logger="car.progress")
    with Progress("quick", total=10) as progress:
        progress.update(10)
    with pytest.raises(ValueError), Progress("failing", announce=True):
        raise ValueError("stop")
    assert [r.getMessage() for r in caplog.records] == ["failing: started"]


def test_amounts_are_short():
    assert [amount(v) for v in (950, 12_345, 1_234_567, 3.4e9, 0.5)] == ["950", "12.3 k", "1.2 M", "3.4 G", "0.5"]


def test_a_file_read_in_chunks_reports_bytes_lines_and_percent(tmp_path, monkeypatch, caplog, every_update):
    rows = [f"2024-05-01T08:{i // 60 % 60:02d}:{i % 60:02d}Z,host-{i % 7},type-{i % 13}" for i in range(30_000)]
    path = tmp_path / "alerts.csv.gz"
    path.write_bytes(gzip.compress(("time,entity,type\n" + "\n".join(rows) + "\n").encode()))
    whole = load_alerts({"format": "csv"}, path)
    monkeypatch.setattr(files, "CHUNK_BYTES", 64 << 10)
    caplog.clear()
    caplog.set_level(logging.INFO, logger="car.progress")
    chunked = load_alerts({"format": "csv"}, path)
    assert chunked.alerts.equals(whole.alerts)
    lines = progress_lines(caplog, "reading alerts.csv.gz")
    shares = [int(m.group(1)) for line in lines if (m := re.search(r"\((\d+)%\)", line))]
    assert len(shares) >= 10 and shares == sorted(shares) and shares[-1] == 100
    assert lines[-1].startswith(f"reading alerts.csv.gz: done, {amount(path.stat().st_size)} bytes in ")
    assert lines[-1].endswith(f"; {len(rows) + 1:,} lines")
    assert progress_lines(caplog, "parsing alerts.csv.gz: done")


def test_pattern_search_reports_each_level(caplog, every_update):
    rng = np.random.default_rng(0)
    symbols = np.tile(np.r_[0, 1, 2, rng.integers(3, 20, 7)], 200)
    tree = ContextTree.build(symbols, np.repeat(np.arange(20), 100), 4, n_symbols=20)
    caplog.set_level(logging.INFO, logger="car.progress")
    find_patterns(tree, PitmanYorTree(4), k_max=4, min_support=5)
    lines = progress_lines(caplog, "pattern search")
    assert re.fullmatch(r"pattern search: 1 of 3 levels \(33%\), .* levels/s; 2 steps: [\d,]+ candidates, "
                        r"[\d,]+ kept, [\d,]+ patterns", lines[0])
    assert lines[-1].startswith("pattern search: done, 3 levels in ")


def test_ranking_solver_reports_its_residual(caplog, every_update):
    n = 200
    chain = build_graph(n, 2, np.arange(20), np.repeat([0, 1], 10), np.r_[np.arange(n - 1), np.arange(1, n)],
                            np.r_[np.arange(1, n), np.arange(n - 1)], np.ones(2 * n - 2))
    caplog.set_level(logging.INFO, logger="car.progress")
    result = collaborative_rank(chain, [1.0, 0.5], np.linspace(0, 1, n))
    lines = progress_lines(caplog, "ranking: conjugate gradient")
    assert len(lines) == result.cg_iterations + 2  # one line per step, the converged check, and done
    assert result.converged and result.cg_iterations > 5
    assert re.fullmatch(r"ranking: conjugate gradient: 0 steps, 0 steps/s; relative residual 1\.0e\+00, stops at 1e-10",
                        lines[0])
    assert lines[-1].startswith(f"ranking: conjugate gradient: done, {result.cg_iterations} steps in ")


@pytest.mark.parametrize("n,text", [(0, "0 alerts"), (1, "1 alert"), (2, "2 alerts"), (45544, "45,544 alerts")])
def test_counts_in_log_lines_read_in_the_singular_and_plural(n, text):
    """The pipeline's and car rank's lines said 'loaded 1 alerts'."""
    assert quantity(n, "alert") == text


def test_a_run_logs_a_line_as_each_long_stage_starts(tmp_path, caplog):
    """Fit, rank and write each start with a line (with the time the stage before took), so that
    a long silence between 'loaded' and 'ranked ... outputs in' says which stage is running."""
    from hydra import compose, initialize_config_dir

    from car.pipeline import run
    from conftest import REPO

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=["data.n_alerts=2000", "logger=none", "trainer.max_steps=2",
                                          "trainer.enable_progress_bar=false"])
    caplog.set_level(logging.INFO, logger="car.pipeline")
    run(cfg, tmp_path)
    lines = [r.getMessage() for r in caplog.records if r.name == "car.pipeline"]
    starts = [next(i for i, line in enumerate(lines) if line.startswith(word)) for word in
              ("loaded", "fitting car on 2,", "fitted in ", "ranked in ", "ranked 2")]
    assert starts == sorted(starts), lines
    assert re.fullmatch(r"fitted in \d+\.\d s; ranking 2,\d{3} alerts", lines[starts[2]])
    assert lines[starts[3]].endswith(f"evaluating and writing the outputs to {tmp_path}")
