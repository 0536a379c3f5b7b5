"""Reproducible: the same data, config and seed give byte-identical outputs, and a rerun into
the same folder replaces each file whole (a new file renamed over the old one)."""

from __future__ import annotations

import pandas as pd

from reliability_helpers import run_train

SAME = ("ranked_alerts.csv", "ranked_patterns.csv", "rejected_alerts.csv", "metrics.json", "attack_graph.graphml")


def test_car_twice_into_one_folder_gives_identical_files(tmp_path):
    out = tmp_path / "run"
    # min_support=2: at 3000 alerts the default (5) finds no pattern, and patterns must be compared too.
    args = ("+experiment=enterprise", "data.n_alerts=3000", "model.patterns.min_support=2", "trainer.max_epochs=5")
    first = run_train(out, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    before = {name: (out / name).read_bytes() for name in SAME}
    inodes = {name: (out / name).stat().st_ino for name in SAME}
    second = run_train(out, *args)
    assert second.returncode == 0, second.stderr[-3000:]
    for name in SAME:
        assert (out / name).read_bytes() == before[name], f"{name} differs between two identical runs"
        assert (out / name).stat().st_ino != inodes[name], f"{name} was not replaced by a new file"
    ranked, patterns = pd.read_csv(out / "ranked_alerts.csv"), pd.read_csv(out / "ranked_patterns.csv")
    assert len(ranked) > 2500 and ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    assert len(patterns) > 0, "the simulator plants campaigns: CAR should find patterns"
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
