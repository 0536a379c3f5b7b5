"""The ranked tables analysts open: alerts in rank order, patterns, rejected rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from car.alerts import AlertTable
from car.models.base import PATTERN_COLUMNS, Ranking


def rank_order(scores: np.ndarray) -> np.ndarray:
    """Row indices by score descending, ties by input order (deterministic), shape (n,)."""
    return np.lexsort((np.arange(len(scores)), -np.asarray(scores, dtype=np.float64)))


def ranked_alerts(table: AlertTable, ranking: Ranking) -> pd.DataFrame:
    """Alerts in rank order: rank, alert_id, score, model columns, alert fields, labels."""
    if len(ranking.scores) != len(table):
        raise ValueError(f"model returned {len(ranking.scores)} scores for {len(table)} alerts")
    order = rank_order(ranking.scores)
    alerts = table.alerts
    head = pd.DataFrame(
        {
            "rank": np.arange(1, len(order) + 1),
            "alert_id": alerts["alert_id"].to_numpy()[order],
            "score": np.asarray(ranking.scores, dtype=np.float64)[order],
        }
    )
    for name, values in ranking.columns.items():
        head[name] = values[order]  # an array or a pandas extension array (pattern_id: Int64)
    fields = ["time", "entity", "type", *table.attributes, "source"]
    parts = [head, alerts[fields].iloc[order].reset_index(drop=True)]
    if table.labels is not None:
        parts.append(table.labels.iloc[order].reset_index(drop=True))
    return pd.concat(parts, axis=1)


def ranked_patterns(ranking: Ranking) -> pd.DataFrame:
    """The model's patterns in rank order with the fixed leading columns."""
    patterns = ranking.patterns
    extra = [c for c in patterns.columns if c not in PATTERN_COLUMNS]
    return patterns.reindex(columns=PATTERN_COLUMNS + extra)
