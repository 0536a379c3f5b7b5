"""Evaluation of alert rankings against labels."""

from car.eval.metrics import (
    alert_groups,
    average_precision,
    evaluate_alerts,
    group_alerts,
    precision_at_k,
    precision_at_positives,
    precision_recall_curve,
    ranking_metrics,
    recall_at_k,
    roc_auc,
    workload_at_recall,
)

__all__ = [
    "alert_groups",
    "average_precision",
    "evaluate_alerts",
    "group_alerts",
    "precision_at_k",
    "precision_at_positives",
    "precision_recall_curve",
    "ranking_metrics",
    "recall_at_k",
    "roc_auc",
    "workload_at_recall",
]
