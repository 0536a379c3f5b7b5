"""Alert ranking metrics, raw and over de-duplicated alert groups (docs: benchmark.md).

Scores: higher = more likely an attack. Labels: 0/1, same shape (n,).

Ties in scores. AP, ROC-AUC and the precision-recall curve follow scikit-learn: tied scores
form one threshold, so the order inside a tie does not matter (ROC-AUC counts a tied
positive/negative pair as 1/2). precision@k, recall@k and workload walk one fixed ranking:
score descending, ties kept in input order (stable sort).

Degenerate labels: every metric is NaN unless the labels hold both classes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from car.alerts import AlertTable

GROUP_SECONDS = 60


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert to float64 scores and int64 0/1 labels, both shape (n,)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    if s.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be 1-d of equal length")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return s, y


def _rank(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels sorted by score descending, ties in input order; shapes (n,)."""
    s, y = _check(scores, labels)
    order = np.argsort(-s, kind="stable")
    return s[order], y[order]


def _degenerate(ranked_labels: np.ndarray) -> bool:
    """True unless both classes are present."""
    positives = int(ranked_labels.sum())
    return positives == 0 or positives == len(ranked_labels)


def _curve(ranked_scores: np.ndarray, ranked_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positive counts at each distinct threshold, descending; shapes (t,)."""
    last_of_tie = np.flatnonzero(ranked_scores[1:] != ranked_scores[:-1])
    ends = np.r_[last_of_tie, len(ranked_scores) - 1]
    tps = np.cumsum(ranked_labels)[ends]
    return tps, ends + 1 - tps


def _ap(ranked_scores: np.ndarray, ranked_labels: np.ndarray) -> float:
    if _degenerate(ranked_labels):
        return math.nan
    tps, fps = _curve(ranked_scores, ranked_labels)
    precision, recall = tps / (tps + fps), tps / tps[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def precision_at_positives(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per alert (n,): for an attack, the precision of the ranking down to its score (its tie
    included); NaN for the others. Their mean is the AP, so ``1 - precision`` summed over a
    group of attacks and divided by all attacks is the AP that group loses."""
    s, y = _check(scores, labels)
    order = np.argsort(-s, kind="stable")
    ranked = s[order]
    tie_end = np.r_[np.flatnonzero(ranked[1:] != ranked[:-1]), len(ranked) - 1]
    end = tie_end[np.searchsorted(tie_end, np.arange(len(ranked)))]  # last index of each alert's tie
    precision = np.cumsum(y[order])[end] / (end + 1)
    out = np.full(len(s), np.nan)
    out[order] = np.where(y[order] == 1, precision, np.nan)
    return out


def _roc_auc(ranked_scores: np.ndarray, ranked_labels: np.ndarray) -> float:
    if _degenerate(ranked_labels):
        return math.nan
    tps, fps = _curve(ranked_scores, ranked_labels)
    tpr, fpr = np.r_[0.0, tps / tps[-1]], np.r_[0.0, fps / fps[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _precision_at_k(ranked_labels: np.ndarray, k: int) -> float:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if _degenerate(ranked_labels):
        return math.nan
    return float(ranked_labels[:k].sum() / min(k, len(ranked_labels)))


def _recall_at_k(ranked_labels: np.ndarray, k: int) -> float:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if _degenerate(ranked_labels):
        return math.nan
    return float(ranked_labels[:k].sum() / ranked_labels.sum())


def _workload(ranked_labels: np.ndarray, recall: float) -> float:
    if not 0 < recall <= 1:
        raise ValueError(f"recall must be in (0, 1], got {recall}")
    if _degenerate(ranked_labels):
        return math.nan
    needed = math.ceil(recall * ranked_labels.sum() - 1e-9)
    reviewed = int(np.searchsorted(np.cumsum(ranked_labels), needed)) + 1
    return reviewed / len(ranked_labels)


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision, sum over thresholds of (recall step) x precision, as in sklearn."""
    return _ap(*_rank(scores, labels))


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: P(random positive outscores random negative), ties 1/2."""
    return _roc_auc(*_rank(scores, labels))


def precision_at_k(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of positives among the top min(k, n) ranked items."""
    return _precision_at_k(_rank(scores, labels)[1], k)


def recall_at_k(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of all positives found among the top k ranked items."""
    return _recall_at_k(_rank(scores, labels)[1], k)


def workload_at_recall(scores: np.ndarray, labels: np.ndarray, recall: float = 0.95) -> float:
    """Fraction of items reviewed in rank order until ``recall`` of the positives are found."""
    return _workload(_rank(scores, labels)[1], recall)


def precision_recall_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at each distinct score threshold, highest threshold first.

    Shapes (t,), t = number of distinct scores; recall is NaN throughout without positives.
    """
    tps, fps = _curve(*_rank(scores, labels))
    total = tps[-1] or math.nan
    return tps / (tps + fps), tps / total


def ranking_metrics(
    scores: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (100, 1000)
) -> dict[str, float]:
    """All alert metrics of one ranking: n, positives, ap, roc_auc, precision_at_<k>,
    recall_at_<k>, workload_at_95."""
    s, y = _rank(scores, labels)
    out = {"n": float(len(y)), "positives": float(y.sum()), "ap": _ap(s, y), "roc_auc": _roc_auc(s, y)}
    for k in ks:
        out[f"precision_at_{k}"] = _precision_at_k(y, k)
    for k in ks:
        out[f"recall_at_{k}"] = _recall_at_k(y, k)
    out["workload_at_95"] = _workload(y, 0.95)
    return out


def alert_groups(alerts: AlertTable | pd.DataFrame) -> np.ndarray:
    """Group id of each alert, shape (n,), int64, numbered by first appearance.

    Key = (entity, type, floor(time / 60 s)); ``alerts`` has datetime ``time``, ``entity``
    and ``type`` columns.
    """
    frame = alerts.alerts if isinstance(alerts, AlertTable) else alerts
    keys = pd.DataFrame(
        {
            "entity": frame["entity"].to_numpy(),
            "type": frame["type"].to_numpy(),
            "minute": frame["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64) // (GROUP_SECONDS * 10**9),
        }
    )
    return keys.groupby(list(keys.columns), sort=False, dropna=False).ngroup().to_numpy(np.int64)


def group_alerts(
    alerts: AlertTable | pd.DataFrame, scores: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """De-duplicate alerts into groups (see ``alert_groups``): max score, any positive.

    ``scores`` shape (n,), ``labels`` shape (n,) or (n, m); returns group scores (g,) and
    group labels (g,) or (g, m), groups in order of first appearance.
    """
    ids = alert_groups(alerts)
    if len(scores) != len(ids) or len(labels) != len(ids):
        raise ValueError(f"{len(ids)} alerts but {len(scores)} scores and {len(labels)} labels")
    group_scores = pd.Series(np.asarray(scores, dtype=np.float64)).groupby(ids).max().to_numpy()
    group_labels = pd.DataFrame(np.asarray(labels)).groupby(ids).max().to_numpy()
    return group_scores, group_labels.reshape(len(group_scores), *np.shape(labels)[1:])


def evaluate_alerts(
    table: AlertTable, scores: np.ndarray, ks: tuple[int, ...] = (100, 1000)
) -> dict[str, float]:
    """Metrics per label kind, raw and grouped, keyed ``<kind>/<raw|grouped>/<metric>``.

    Metrics as in ``ranking_metrics``, e.g. ``strict/grouped/workload_at_95``; names are
    valid MLflow metric keys. Empty when the table has no labels. ``scores`` shape (n,).
    """
    kinds = table.label_kinds
    if not kinds:
        return {}
    labels = np.column_stack([table.label(kind) for kind in kinds])
    levels = {"raw": (np.asarray(scores, dtype=np.float64), labels), "grouped": group_alerts(table, scores, labels)}
    out = {}
    for kind_index, kind in enumerate(kinds):
        for level, (level_scores, level_labels) in levels.items():
            for name, value in ranking_metrics(level_scores, level_labels[:, kind_index], ks).items():
                out[f"{kind}/{level}/{name}"] = value
    return out
