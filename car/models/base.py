"""The one ranker interface shared by CAR, its ablations, the baselines and the peers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from car.alerts import AlertTable
from car.errors import ConfigError, is_number

STEP_SEPARATOR = " > "  # joins the steps of a pattern: "A > B > C"
PATTERN_COLUMNS = [
    "rank", "pattern_id", "score", "novelty", "dependency", "steps", "occurrences",
    "entities", "first_time", "last_time", "alert_count", "next_steps",
]


@dataclass
class Ranking:
    """A model's answer for the alerts it ranked.

    scores: shape (n,), higher = more likely a true positive (float64).
    columns: extra per-alert output columns, each shape (n,) (e.g. ``temporal_score``).
    patterns: one row per candidate pattern, columns ``PATTERN_COLUMNS`` (may be empty).
    pattern_alerts: ``(alert_row, pattern_id)`` pairs of the occurrence matrix, for
        evaluation of patterns; ``None`` when the model yields no patterns.
    graph: attack-scenario graph of the top patterns, or ``None``.
    """

    scores: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    patterns: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=PATTERN_COLUMNS))
    pattern_alerts: np.ndarray | None = None
    graph: nx.DiGraph | None = None


class AlertRanker(ABC):
    """Fit on alerts (plus optional unlabeled history), then rank alerts.

    Models never see the batch's labels: the pipeline passes ``AlertTable.unlabeled()`` tables.
    The history's labels reach only a model with ``learns_from_history_labels`` (the peers'
    protocol, docs: benchmark.md).
    """

    name: str = "ranker"
    learns_from_history_labels: bool = False

    @abstractmethod
    def fit(self, alerts: AlertTable, history: AlertTable | None = None, trainer: dict[str, Any] | None = None) -> AlertRanker:
        """Learn from ``alerts`` and ``history``; ``trainer`` holds Lightning Trainer options."""

    @abstractmethod
    def rank(self, alerts: AlertTable) -> Ranking:
        """Score every alert of ``alerts`` (higher = more likely a true positive)."""


def check_seconds(value: object, key: str, null: str = "to count every alert") -> None:
    """A one-line ConfigError unless ``value`` (config key ``key``) is seconds >= 0 or None
    (``null`` says what None means)."""
    if value is not None and not (is_number(value) and value >= 0):
        raise ConfigError(f"{key}={value!r}: use seconds >= 0, or null {null}")
