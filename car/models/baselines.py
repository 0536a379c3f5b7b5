"""Baselines that need no training."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from car.alerts import AlertTable
from car.errors import ConfigError
from car.models.base import AlertRanker, Ranking, check_seconds
from car.ranking.prior import burst_starts


class Rarity(AlertRanker):
    """Score = -log relative frequency of the alert type (rare types rank first).

    ``counts_from``: ``input`` (the alerts being ranked), ``history`` (only the history
    table: types unseen there rank first) or ``both``. Frequencies use add-one smoothing
    over the known types plus one unseen slot, so every score is finite. ``burst_gap``
    (seconds): count a burst of same-type alerts of one entity, each within that of the one
    before of that type, once (CAR's type rarity, car/ranking/prior.py); None counts every alert.
    """

    name = "rarity"

    def __init__(self, counts_from: str = "input", burst_gap: float | None = None) -> None:
        if counts_from not in {"input", "history", "both"}:
            raise ConfigError(f"model.counts_from={counts_from!r}: use input, history or both")
        check_seconds(burst_gap, "model.burst_gap")
        self.counts_from, self.burst_gap = counts_from, burst_gap
        self.counts: pd.Series | None = None

    def fit(self, alerts: AlertTable, history: AlertTable | None = None, trainer: dict[str, Any] | None = None) -> Rarity:
        """Count the types of ``alerts``, ``history`` or both (``counts_from``); ``trainer`` is not used."""
        if self.counts_from != "input" and history is None:
            raise ConfigError(f"model.counts_from={self.counts_from} needs data.history=<path>")
        parts = {
            "input": [alerts],
            "history": [history],
            "both": [alerts, history],
        }[self.counts_from]
        self.counts = pd.concat([_counted_types(t, self.burst_gap) for t in parts]).value_counts()
        return self

    def rank(self, alerts: AlertTable) -> Ranking:
        """Score = -log smoothed frequency of each alert's type among the counted ones."""
        if self.counts is None:
            raise RuntimeError("Rarity.rank called before fit")
        counts = alerts.alerts["type"].map(self.counts).fillna(0).to_numpy(np.float64)
        total = float(self.counts.sum()) + len(self.counts) + 1
        return Ranking(scores=-np.log((counts + 1.0) / total))


def _counted_types(table: AlertTable, burst_gap: float | None) -> pd.Series:
    """The types that count in ``table``: of every alert, or of the first alert of each burst."""
    types = table.alerts["type"]
    if burst_gap is None:
        return types
    entity, kind = pd.factorize(table.alerts["entity"])[0], pd.factorize(types)[0]
    return types[burst_starts(entity, kind, table.seconds(), burst_gap)]
