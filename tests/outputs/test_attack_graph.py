"""attack_graph.graphml: an edge joins consecutive alerts of one occurrence, also where two
occurrences of one pattern interleave on an entity."""

from __future__ import annotations

import numpy as np
import pandas as pd

from car.models.car_module import runs_to_alerts
from car.outputs.attack_graph import attack_graph
from car.temporal.patterns import pattern_occurrences


def _graph(symbols: np.ndarray, names: list[str], occ) -> dict:
    n = len(symbols)
    types = np.array(names)[symbols]
    times = pd.Series(pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC"))
    graph = attack_graph(np.array(["h"] * n), types, times, occ, np.array([1]), 20)
    return {(u, v): d["count"] for u, v, d in graph.edges(data=True)}


def test_interleaved_occurrences_give_only_their_own_transitions():
    # Pattern E > C6 > C2 > C6 in E C6 C2 E C6 C2 C6: occurrences at 0,1,2,4 and 3,4,5,6 interleave.
    symbols = np.array([0, 1, 2, 0, 1, 2, 1])
    occ = pattern_occurrences([(0, 1, 2, 1)], symbols, np.zeros(7, dtype=np.int64), max_gap=4)
    edges = _graph(symbols, ["E", "C6", "C2"], occ)
    # Before: C2 -> E (not a step of the pattern) and E -> C6 three times.
    assert edges == {("h | E", "h | C6"): 2, ("h | C6", "h | C2"): 2, ("h | C2", "h | C6"): 2}
    assert occ.occ_steps.tolist() == [0, 1, 2, 4, 3, 4, 5, 6] and occ.occ_size.tolist() == [4, 4]


def test_interleaved_occurrences_over_runs_keep_their_runs():
    # The same over runs of several alerts: run 3 (C6) has two alerts, a self-loop per occurrence's pass.
    symbols = np.array([0, 1, 2, 0, 1, 2, 1])
    occ = pattern_occurrences([(0, 1, 2, 1)], symbols, np.zeros(7, dtype=np.int64), max_gap=4)
    alert_run = np.array([0, 1, 2, 3, 4, 4, 5, 6])
    alerts = runs_to_alerts(occ, alert_run)
    assert alerts.occ_steps.tolist() == [0, 1, 2, 4, 5, 3, 4, 5, 6, 7] and alerts.occ_size.tolist() == [5, 5]
    edges = _graph(symbols[alert_run], ["E", "C6", "C2"], alerts)
    assert edges == {("h | E", "h | C6"): 2, ("h | C6", "h | C6"): 2, ("h | C6", "h | C2"): 2,
                     ("h | C2", "h | C6"): 2}


def test_subset_keeps_each_occurrence_steps():
    symbols = np.array([0, 1, 2, 0, 1, 2, 1])
    occ = pattern_occurrences([(0, 1), (1, 2), (0, 1, 2, 1)], symbols, np.zeros(7, dtype=np.int64), max_gap=4)
    sub = occ.subset(np.array([2]))
    assert sub.occ_steps.tolist() == [0, 1, 2, 4, 3, 4, 5, 6] and sub.occ_size.tolist() == [4, 4]
    assert occ.subset(np.array([0])).occ_steps.tolist() == [0, 1, 3, 4]
