"""Baselines that need no training."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from car.alerts import AlertTable
from car.errors import ConfigError
from car.models.base import AlertRanker, Ranking


class Rarity(AlertRanker):
    """Score = -log relative frequency of the alert type (rare types rank first).

    ``counts_from``: ``input`` (the alerts being ranked), ``history`` (only the history
    table: types unseen there rank first) or ``both``. Frequencies use add-one smoothing
    over the known types plus one unseen slot, so every score is finite.
    """

    name = "rarity"

    def __init__(self, counts_from: str = "input") -> None:
        if counts_from not in {"input", "history", "both"}:
            raise ConfigError(f"model.counts_from={counts_from!r}: use input, history or both")
        self.counts_from = counts_from
        self.counts: pd.Series | None = None

    def fit(self, alerts: AlertTable, history: AlertTable | None = None, trainer: dict[str, Any] | None = None) -> Rarity:
        if self.counts_from != "input" and history is None:
            raise ConfigError(f"model.counts_from={self.counts_from} needs data.history=<path>")
        parts = {
            "input": [alerts],
            "history": [history],
            "both": [alerts, history],
        }[self.counts_from]
        self.counts = pd.concat([t.alerts["type"] for t in parts]).value_counts()
        return self

    def rank(self, alerts: AlertTable) -> Ranking:
        if self.counts is None:
            raise RuntimeError("Rarity.rank called before fit")
        counts = alerts.alerts["type"].map(self.counts).fillna(0).to_numpy(np.float64)
        total = float(self.counts.sum()) + len(self.counts) + 1
        return Ranking(scores=-np.log((counts + 1.0) / total))
