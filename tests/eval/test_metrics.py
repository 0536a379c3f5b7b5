import math
import re

import numpy as np
import pandas as pd
import pytest

from car.alerts import AlertTable
from car.eval import (
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

# mlflow.utils.validation.validate_param_and_metric_name, its stricter (Windows) form
MLFLOW_NAME = re.compile(r"^[/\w.\- ]*$")

RANKED = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
RANKED_LABELS = np.array([1, 0, 1, 0, 0])


def test_average_precision_without_ties():
    # positives at ranks 1 and 3: AP = (1/1 + 2/3) / 2 = 5/6
    assert average_precision(RANKED, RANKED_LABELS) == pytest.approx(5 / 6)


def test_average_precision_ties_form_one_threshold():
    # scores [.5, .5, .2], labels [1, 0, 1]; thresholds (sklearn):
    #   >= .5: tp 1, fp 1 -> precision 1/2, recall 1/2
    #   >= .2: tp 2, fp 1 -> precision 2/3, recall 1
    # AP = 1/2 * 1/2 + 1/2 * 2/3 = 7/12 (the input order [1, 0, 1] would give 5/6)
    assert average_precision([0.5, 0.5, 0.2], [1, 0, 1]) == pytest.approx(7 / 12)
    assert average_precision([0.5, 0.5, 0.2], [0, 1, 1]) == pytest.approx(7 / 12)


def test_roc_auc_with_ties():
    # positives {.9, .5}, negatives {.5, .1}; pairs: .9>.5 1, .9>.1 1, .5=.5 1/2, .5>.1 1
    # AUC = 3.5 / 4
    assert roc_auc([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.875)
    # perfect and reversed rankings
    assert roc_auc(RANKED, [1, 1, 0, 0, 0]) == 1.0
    assert roc_auc(-RANKED, [1, 1, 0, 0, 0]) == 0.0


def test_precision_and_recall_at_k():
    # ranked labels [1, 0, 1, 0, 0], 2 positives
    assert precision_at_k(RANKED, RANKED_LABELS, 1) == 1.0
    assert precision_at_k(RANKED, RANKED_LABELS, 2) == 0.5
    assert precision_at_k(RANKED, RANKED_LABELS, 3) == pytest.approx(2 / 3)
    assert precision_at_k(RANKED, RANKED_LABELS, 10) == pytest.approx(2 / 5)  # k > n: over n
    assert recall_at_k(RANKED, RANKED_LABELS, 1) == 0.5
    assert recall_at_k(RANKED, RANKED_LABELS, 2) == 0.5
    assert recall_at_k(RANKED, RANKED_LABELS, 3) == 1.0
    with pytest.raises(ValueError):
        precision_at_k(RANKED, RANKED_LABELS, 0)


def test_rank_order_is_stable_on_ties():
    # all tied: the order is the input order
    assert precision_at_k([0.5, 0.5, 0.5], [0, 1, 0], 1) == 0.0
    assert precision_at_k([0.5, 0.5, 0.5], [1, 0, 0], 1) == 1.0
    # scores are sorted descending first: [.1, .9] -> items 1, 0
    assert precision_at_k([0.1, 0.9], [1, 0], 1) == 0.0


def test_workload_at_recall():
    # ranked labels [1, 0, 1, 0, 0]: 95% of 2 positives needs both -> 3 items of 5
    assert workload_at_recall(RANKED, RANKED_LABELS) == pytest.approx(3 / 5)
    # 50% needs the first positive -> 1 item of 5
    assert workload_at_recall(RANKED, RANKED_LABELS, recall=0.5) == pytest.approx(1 / 5)
    # 20 positives at 95% need 19 (not 20 from float rounding): positives first -> 19/40
    assert workload_at_recall(np.arange(40)[::-1], np.r_[np.ones(20), np.zeros(20)]) == pytest.approx(19 / 40)
    # ties: stable order [0, 0, 1] -> 3/3
    assert workload_at_recall([0.5, 0.5, 0.5], [0, 0, 1]) == 1.0


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1, 1], []])
def test_degenerate_labels_give_nan(labels):
    scores = np.linspace(0, 1, len(labels))
    metrics = [average_precision, roc_auc, workload_at_recall]
    assert all(math.isnan(f(scores, labels)) for f in metrics)
    assert math.isnan(precision_at_k(scores, labels, 1))
    assert math.isnan(recall_at_k(scores, labels, 1))


def test_bad_input_raises():
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [1, 0, 1])
    with pytest.raises(ValueError):
        roc_auc([0.1, np.nan], [1, 0])
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [1, 2])


def test_precision_recall_curve():
    # thresholds .5 and .2 (see the AP ties example)
    precision, recall = precision_recall_curve([0.5, 0.5, 0.2], [1, 0, 1])
    np.testing.assert_allclose(precision, [1 / 2, 2 / 3])
    np.testing.assert_allclose(recall, [1 / 2, 1])


def _brute_auc(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def _brute_ap(scores, labels):
    # sklearn definition: sum over distinct thresholds t (descending) of
    # (recall(t) - recall(previous t)) * precision(t)
    ap, previous_recall = 0.0, 0.0
    for t in sorted(set(scores), reverse=True):
        chosen = [y for s, y in zip(scores, labels) if s >= t]
        recall = sum(chosen) / labels.sum()
        ap += (recall - previous_recall) * sum(chosen) / len(chosen)
        previous_recall = recall
    return ap


@pytest.mark.parametrize("seed", range(5))
def test_against_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, 50).astype(float)  # many ties
    labels = rng.integers(0, 2, 50)
    assert roc_auc(scores, labels) == pytest.approx(_brute_auc(scores, labels))
    assert average_precision(scores, labels) == pytest.approx(_brute_ap(scores, labels))


@pytest.mark.parametrize("seed", range(3))
def test_ap_without_ties_is_mean_precision_at_positives(seed):
    rng = np.random.default_rng(seed)
    scores, labels = rng.random(50), rng.integers(0, 2, 50)
    ranked = labels[np.argsort(-scores)]
    hits = np.cumsum(ranked)
    expected = np.mean([hits[i] / (i + 1) for i in np.flatnonzero(ranked)])
    assert average_precision(scores, labels) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(3))
def test_precision_at_positives_averages_to_the_ap_with_ties(seed):
    """The per-attack precisions behind experiments/ap_loss.py: NaN for the others, their mean
    the AP even where ties span both classes (a tie counts whole, as in the AP)."""
    rng = np.random.default_rng(seed)
    scores, labels = rng.integers(0, 6, 60).astype(float), rng.integers(0, 2, 60)
    precision = precision_at_positives(scores, labels)
    assert np.isnan(precision[labels == 0]).all()
    assert np.nanmean(precision) == pytest.approx(average_precision(scores, labels))
    # By hand: scores 3, 2, 2, 1 with labels 1, 0, 1, 1: the tie at 2 counts whole (1 hit of 3).
    assert precision_at_positives(np.array([3.0, 2.0, 2.0, 1.0]), np.array([1, 0, 1, 1])) == pytest.approx(
        [1.0, np.nan, 2 / 3, 3 / 4], nan_ok=True)


def _frame():
    t = pd.Timestamp("2022-01-01 10:00:00", tz="UTC")
    rows = [
        ("h1", "scan", t + pd.Timedelta(seconds=10)),  # group 0
        ("h1", "scan", t + pd.Timedelta(seconds=50)),  # same host/type/minute -> group 0
        ("h1", "scan", t + pd.Timedelta(seconds=65)),  # next minute (15 s later) -> group 1
        ("h2", "scan", t + pd.Timedelta(seconds=20)),  # other host -> group 2
        ("h1", "web", t + pd.Timedelta(seconds=30)),  # other type -> group 3
        ("h1", "scan", t + pd.Timedelta(seconds=59)),  # back in the first minute -> group 0
    ]
    return pd.DataFrame(rows, columns=["entity", "type", "time"])


def test_alert_groups():
    np.testing.assert_array_equal(alert_groups(_frame()), [0, 0, 1, 2, 3, 0])


def test_group_alerts_max_score_any_label():
    scores = np.array([0.2, 0.7, 0.1, 0.4, 0.3, 0.5])
    labels = np.array([0, 1, 0, 0, 1, 0])
    group_scores, group_labels = group_alerts(_frame(), scores, labels)
    # group 0 = alerts 0, 1, 5: max(.2, .7, .5) = .7, any(0, 1, 0) = 1
    np.testing.assert_allclose(group_scores, [0.7, 0.1, 0.4, 0.3])
    np.testing.assert_array_equal(group_labels, [1, 0, 0, 1])
    # several label kinds at once: shape (g, m)
    _, both = group_alerts(_frame(), scores, np.column_stack([labels, 1 - labels]))
    np.testing.assert_array_equal(both, [[1, 1], [0, 1], [0, 1], [1, 0]])
    with pytest.raises(ValueError):
        group_alerts(_frame(), scores[:3], labels)


def _table():
    frame = _frame()
    alerts = frame.assign(alert_id=np.arange(len(frame)))[["alert_id", "time", "entity", "type"]]
    labels = pd.DataFrame({"label_strict": [0, 1, 0, 0, 1, 0], "label_window": [1, 1, 0, 0, 1, 0]}, dtype=np.int8)
    return AlertTable(alerts=alerts, attributes=[], labels=labels)


def test_evaluate_alerts_keys_and_values():
    scores = np.array([0.2, 0.7, 0.1, 0.4, 0.3, 0.5])
    metrics = evaluate_alerts(_table(), scores, ks=(1, 100))
    names = ["n", "positives", "ap", "roc_auc", "precision_at_1", "precision_at_100", "recall_at_1", "recall_at_100", "workload_at_95"]
    assert set(metrics) == {f"{k}/{lvl}/{m}" for k in ("strict", "window") for lvl in ("raw", "grouped") for m in names}
    assert all(MLFLOW_NAME.match(key) for key in metrics)
    assert all(isinstance(v, float) for v in metrics.values())
    # strict raw: ranked labels by score .7 .5 .4 .3 .2 .1 -> [1, 0, 0, 1, 0, 0]
    assert metrics["strict/raw/n"] == 6 and metrics["strict/raw/positives"] == 2
    assert metrics["strict/raw/ap"] == pytest.approx((1 + 2 / 4) / 2)
    assert metrics["strict/raw/workload_at_95"] == pytest.approx(4 / 6)
    # strict grouped: scores [.7, .1, .4, .3], labels [1, 0, 0, 1] -> ranked [1, 0, 1, 0]
    assert metrics["strict/grouped/n"] == 4
    assert metrics["strict/grouped/ap"] == pytest.approx((1 + 2 / 3) / 2)
    assert metrics["strict/grouped/roc_auc"] == pytest.approx(3 / 4)
    # window raw: ranked [1, 0, 0, 1, 1, 0], 3 positives
    assert metrics["window/raw/recall_at_1"] == pytest.approx(1 / 3)
    assert metrics["window/raw/precision_at_100"] == pytest.approx(3 / 6)


def test_evaluate_alerts_without_labels_is_empty():
    assert evaluate_alerts(_table().unlabeled(), np.zeros(6)) == {}


def test_ranking_metrics_names():
    assert list(ranking_metrics(RANKED, RANKED_LABELS, ks=(2,))) == [
        "n", "positives", "ap", "roc_auc", "precision_at_2", "recall_at_2", "workload_at_95"
    ]
