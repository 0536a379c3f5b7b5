"""The peers DeepCASE and Tiresias: the protocol of benchmark.md on real AIT-ADS slices, and their errors."""

import logging
import re
import sys

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from car.alerts import AlertTable
from car.data import load_alerts
from car.eval.metrics import average_precision
from car.errors import ConfigError
from car.models.peer_inputs import EventCodes, previous_events
from car.pipeline import build_model, run
from conftest import REPO, shared_file

# Real-data slices (alert rows of the files). shaw's attack starts at row 44,227: rows 38,000-46,000
# hold benign alerts and labelled attack steps (DeepCASE scores its clusters with them), rows
# 0-6,000 only benign ones (Tiresias learns normal behaviour). The batch, russellmitchell rows
# 15,000-27,000, holds its first attack steps (from row 25,382): 12.6% positives.
SLICES = {"labelled_history": ("shaw", 38000, 46000), "benign_history": ("shaw", 0, 6000),
          "batch": ("russellmitchell", 15000, 27000)}
BATCH_POSITIVES = 0.126


def compose_model(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return compose("train", overrides=list(overrides))


def ait_slice(folder, scenario: str, start: int, stop: int) -> str:
    """Rows start..stop-1 of a scenario's CSV, written as an AIT-ADS file; returns its path."""
    frame = pd.read_csv(shared_file("ait-ads", f"{scenario}_alerts.csv.gz"), dtype=str, keep_default_na=False)
    path = folder / f"{scenario}_{start}_{stop}.csv"
    frame.iloc[start:stop].to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def slices(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("ait")
    return {name: ait_slice(folder, *rows) for name, rows in SLICES.items()}


def test_deepcase_trained_on_labelled_history_ranks_attacks_first(tmp_path, slices, caplog):
    """The protocol through train.py's pipeline: data.history's labels reach DeepCASE, whose
    clusters they score. Short training (2 epochs, 20 attention steps). Measured on these
    slices: AP raw 0.68, workload to 95% recall 0.17 (benchmark.md's full pair: 0.837, 0.26);
    random AP = 0.126. With model.review=after_attacks: AP raw 0.97."""
    cfg = compose_model("model=deepcase", "model.epochs=2", "model.iterations=20", "data=ait_ads",
                        f"data.path={slices['batch']}", f"data.history={slices['labelled_history']}",
                        "logger=none", "trainer.enable_progress_bar=false")
    caplog.set_level(logging.INFO)
    metrics = run(cfg, tmp_path)
    assert not [r for r in caplog.records if r.name.startswith("deepcase")]  # not a line per batch in train.log
    assert metrics["strict/raw/positives"] / metrics["strict/raw/n"] == pytest.approx(BATCH_POSITIVES, abs=0.001)
    assert metrics["strict/raw/ap"] >= 0.6
    assert metrics["strict/raw/workload_at_95"] <= 0.25
    scores = pd.read_csv(tmp_path / "ranked_alerts.csv")["score"]
    assert (scores == 1.0).sum() > 100  # alerts matched to a cluster of labelled attack steps (max = 1)
    assert (scores >= 2.0).sum() > 100  # alerts sent to manual review, first


@pytest.mark.parametrize(("review", "expected"), [("first", [2.5, 1.0, 0.0, 2.1, 0.5]),
                                                  ("after_attacks", [1.5, 3.0, 0.0, 1.1, 2.5])])
def test_deepcase_review_events_rank_by_confidence_first_or_after_attack_clusters(review, expected):
    model = build_model(compose_model("model=deepcase", f"model.review={review}").model)
    verdict = np.array([-1.0, 1.0, 0.0, -3.0, 0.5])  # review, attack cluster, benign cluster, review, mixed
    confidence = np.array([0.5, 0.9, 0.9, 0.1, 0.2])
    np.testing.assert_allclose(model.scores_from(verdict, confidence), expected)


def test_tiresias_trained_on_benign_history_predicts_types_and_ranks_attacks_first(slices):
    """Trained on benign shaw alerts (context 10, hidden 64, lr 0.5 so that one epoch of 6,000
    alerts learns), it predicts the batch's types better than their history frequencies (measured
    mean P(type | context) 0.60 against 0.29) and ranks attacks first: AP raw 0.86 (benchmark.md's
    full pair: 0.672), random 0.126."""
    history, batch = (load_alerts({"format": "ait_ads"}, slices[name]) for name in ("benign_history", "batch"))
    model = build_model(compose_model("model=tiresias", "model.context=10", "model.hidden=64", "model.lr=0.5").model)
    model.fit(batch.unlabeled(), history.unlabeled())
    contexts, events = previous_events(batch, model.codes, model.context, model.timeout)
    known = events.numpy() != model.codes.unknown
    frequency = batch.alerts["type"].map(history.alerts["type"].value_counts(normalize=True)).to_numpy(float)
    assert model.probabilities(contexts, events)[known].mean() >= 1.5 * frequency[known].mean()
    scores = model.rank(batch.unlabeled()).scores
    assert average_precision(scores, batch.label("strict")) >= 0.75


@pytest.mark.parametrize("model", ["deepcase", "tiresias"])
def test_peer_without_history_is_a_one_line_config_error(model):
    table = load_alerts({"format": "enterprise_sim", "n_alerts": 200, "seed": 0}, None)
    peer = build_model(compose_model(f"model={model}").model)
    expected = (rf"^model={model} trains on a labelled history scenario \(\.\./shared/docs/benchmark\.md, Peers\): "
                r"set data.history=<alerts file or folder> \(a file format, not data=enterprise_sim\), "
                r"as python train.py -m \+experiment=ait_ads_peers does$")
    with pytest.raises(ConfigError, match=expected):
        peer.fit(table.unlabeled(), None)


@pytest.mark.parametrize(("model", "package"), [("deepcase", "deepcase"), ("tiresias", "tiresias"),
                                                ("deepcase", "sklearn"), ("tiresias", "arrayLSTM")])
def test_peer_whose_package_cannot_be_imported_says_so_in_one_line(monkeypatch, model, package):
    """A missing package (or a missing dependency of it): None in sys.modules makes its import fail."""
    for name in [m for m in sys.modules if m.split(".")[0] in {model, package}]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(ConfigError) as err:  # when the model is built, before any data is loaded
        build_model(compose_model(f"model={model}").model)
    message = str(err.value)
    assert "\n" not in message
    reason = rf"\([^)]*\b{package}\b[^)]*\)"  # the ImportError, naming the missing package
    assert re.search(rf": model={model} cannot run: package {model} is not importable {reason}; ", message)
    assert message.endswith("install the peers extra: .venv/bin/pip install -e '.[peers]'")


def test_deepcase_needs_the_label_kind_in_the_history():
    table = load_alerts({"format": "enterprise_sim", "n_alerts": 200, "seed": 0}, None)
    peer = build_model(compose_model("model=deepcase").model)
    with pytest.raises(ConfigError, match=r"^model.labels=strict: data.history \S+ has no label_strict column "
                                          r"\(label kinds: attack\); set model.labels to one of them$"):
        peer.fit(table.unlabeled(), table)
    with pytest.raises(ConfigError, match=r": model.strategy='mean' is not known; use max or avg$"):
        build_model(compose_model("model=deepcase", "model.strategy=mean").model)


def test_previous_events_are_the_entitys_earlier_alerts_within_the_timeout():
    """Exact contexts on a hand-made table: per entity, by time (ties in input order)."""
    alerts = pd.DataFrame({
        "alert_id": np.arange(7),
        "time": pd.to_datetime([30, 10, 20, 20, 1000, 15, 20], unit="s", utc=True),
        "entity": ["h1", "h1", "h2", "h1", "h1", "h2", "h1"],
        "type": ["c", "a", "a", "b", "a", "zzz", "c"],
    })
    codes = EventCodes(np.array(["a", "b", "c"]))
    contexts, events = previous_events(AlertTable(alerts, attributes=[]), codes, length=2, timeout=100)
    pad, unknown = codes.padding, codes.unknown
    assert events.tolist() == [2, 0, 0, 1, 0, unknown, 2]
    # h1 by time: a(10) b(20) c(20, row 6 after row 3) c(30) a(1000: more than 100 s after the
    # others); h2: zzz(15) a(20). Oldest first.
    assert contexts.tolist() == [[1, 2], [pad, pad], [pad, unknown], [pad, 0], [pad, pad], [pad, pad], [0, 1]]
