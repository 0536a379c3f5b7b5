"""Saved CAR models: the saved folder round trip, online ranking of new alerts (counts grow by
exactly those alerts, the parameters stay), alerts already counted, values never counted."""

import json
import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from car.data import load_alerts
from car.data.simulate import write_simulation
from car.models.saved import MANIFEST, SavedModel
from conftest import REPO

SIM = {"format": "enterprise_sim", "n_alerts": 6000, "seed": 3}
FIT_SHARE = 0.6  # the simulator's alerts are in time order: fit on the first 60%, the rest is new


def rows(table, keep):
    """The alerts ``keep`` (a slice or row indices) of ``table`` as a table of their own."""
    labels = table.labels.iloc[keep].reset_index(drop=True) if table.labels is not None else None
    return replace(table, alerts=table.alerts.iloc[keep].reset_index(drop=True), labels=labels)


@pytest.fixture(scope="module")
def sim():
    return load_alerts(SIM, None)


@pytest.fixture(scope="module")
def fitted(sim, tmp_path_factory):
    """(the fitted model's saved folder, the fit alerts, the fit's ranking of them)."""
    first = rows(sim, slice(0, int(FIT_SHARE * len(sim))))
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        model = instantiate(compose("train", overrides=["model=car"]).model, _recursive_=False)
    ranking = model.fit(first.unlabeled(), trainer={"max_epochs": 3}).rank(first.unlabeled())
    folder = SavedModel.from_fit(model, {**SIM, "path": None, "history": None}).save(tmp_path_factory.mktemp("model"))
    return folder, first, ranking


def test_loaded_model_ranks_its_fit_alerts_as_the_fit_did(fitted):
    folder, first, fit_ranking = fitted
    saved = SavedModel.load(folder)
    assert json.loads((folder / MANIFEST).read_text())["loader"] == SIM
    online = saved.rank(first.unlabeled())
    np.testing.assert_array_equal(online.ranking.scores, fit_ranking.scores)
    for name in ("temporal_score", "content_score", "pattern_id", "why"):
        np.testing.assert_array_equal(np.asarray(online.ranking.columns[name]), np.asarray(fit_ranking.columns[name]))
    assert len(fit_ranking.patterns) > 0
    pd.testing.assert_frame_equal(online.ranking.patterns, fit_ranking.patterns)
    assert sorted(online.ranking.graph.edges(data=True)) == sorted(fit_ranking.graph.edges(data=True))
    # Every alert was counted at fit: nothing is counted twice, nothing is new.
    assert len(online.model.counted.times) == len(first) and online.unseen.with_unseen == 0
    pd.testing.assert_series_equal(online.model.counted.value_counts("type"), saved.counted.value_counts("type"))


def test_a_model_saved_before_pattern_diversity_ranks_patterns_by_score(fitted, tmp_path):
    """Manifests written before ``patterns.diversity`` existed load with the order of then."""
    import shutil

    folder, first, fit_ranking = fitted
    old = shutil.copytree(folder, tmp_path / "old")
    manifest = json.loads((old / MANIFEST).read_text())
    del manifest["options"]["patterns"]["diversity"]
    (old / MANIFEST).write_text(json.dumps(manifest))
    loaded = SavedModel.load(old)
    assert loaded.car.options["patterns"]["diversity"] == "none"
    assert SavedModel.load(folder).car.options["patterns"]["diversity"] == "steps"
    patterns = loaded.rank(first.unlabeled()).ranking.patterns
    occurs = patterns["occurrences"] > 0
    assert occurs.is_monotonic_decreasing and patterns["score"][occurs].is_monotonic_decreasing
    assert (patterns["novelty"] == 1).all()
    assert sorted(patterns["steps"]) == sorted(fit_ranking.patterns["steps"])


def test_a_model_saved_before_lifting_agreement_ranks_with_the_two_sided_objective(fitted, tmp_path):
    """Manifests written before ``ranking.agreement`` existed load with the paper's objective, the
    only one then, and rank as a model saved with ``agreement: two_sided`` does."""
    import shutil

    folder, first, _ = fitted
    old = shutil.copytree(folder, tmp_path / "old")
    manifest = json.loads((old / MANIFEST).read_text())
    assert manifest["options"]["ranking"].pop("agreement") == "lift"
    (old / MANIFEST).write_text(json.dumps(manifest))
    loaded = SavedModel.load(old)
    assert loaded.car.options["ranking"]["agreement"] == "two_sided"
    manifest["options"]["ranking"]["agreement"] = "two_sided"
    (old / MANIFEST).write_text(json.dumps(manifest))
    explicit = SavedModel.load(old).rank(first.unlabeled()).ranking.scores
    lifted = SavedModel.load(folder).rank(first.unlabeled()).ranking.scores
    np.testing.assert_array_equal(loaded.rank(first.unlabeled()).ranking.scores, explicit)
    assert not np.allclose(explicit, lifted)


def test_a_model_saved_before_normalised_similarity_ranks_with_raw_weights(fitted, tmp_path):
    """Manifests written before ``ranking.normalise_similarity`` existed load with the raw
    similarity weights they were fitted with (sessions 1-8)."""
    import shutil

    folder, first, _ = fitted
    old = shutil.copytree(folder, tmp_path / "old")
    manifest = json.loads((old / MANIFEST).read_text())
    assert manifest["options"]["ranking"].pop("normalise_similarity") is True
    (old / MANIFEST).write_text(json.dumps(manifest))
    loaded = SavedModel.load(old)
    assert loaded.car.options["ranking"]["normalise_similarity"] is False
    manifest["options"]["ranking"]["normalise_similarity"] = False
    (old / MANIFEST).write_text(json.dumps(manifest))
    raw = loaded.rank(first.unlabeled()).ranking.scores
    np.testing.assert_array_equal(raw, SavedModel.load(old).rank(first.unlabeled()).ranking.scores)
    assert not np.allclose(raw, SavedModel.load(folder).rank(first.unlabeled()).ranking.scores)


@pytest.mark.parametrize("key,saved,before", [("rarity_bandwidth", 1.0, None), ("tuple_pull", 0.5, 0.0)])
def test_a_model_saved_before_a_ranking_option_ranks_as_it_was_fitted(fitted, sim, tmp_path, key, saved, before):
    """Manifests written before ``ranking.rarity_bandwidth`` (session 15: the type-rarity kernel)
    or ``ranking.tuple_pull`` (session 17) existed load with the option off, as they were fitted,
    and rank the fit's alerts and new ones as a model saved with it off does."""
    import shutil

    folder, first, _ = fitted
    new = rows(sim, slice(int(FIT_SHARE * len(sim)), None)).unlabeled()
    old = shutil.copytree(folder, tmp_path / "old")
    manifest = json.loads((old / MANIFEST).read_text())
    assert manifest["options"]["ranking"].pop(key) == saved
    (old / MANIFEST).write_text(json.dumps(manifest))
    loaded = SavedModel.load(old)
    assert loaded.car.options["ranking"][key] == before
    manifest["options"]["ranking"][key] = before
    (old / MANIFEST).write_text(json.dumps(manifest))
    explicit, current = SavedModel.load(old), SavedModel.load(folder)
    for alerts in (first.unlabeled(), new):
        scores = loaded.rank(alerts).ranking.scores
        np.testing.assert_array_equal(scores, explicit.rank(alerts).ranking.scores)
        assert not np.allclose(scores, current.rank(alerts).ranking.scores)


def test_new_alerts_grow_the_counts_by_exactly_themselves(fitted, sim):
    folder, first, _ = fitted
    saved = SavedModel.load(folder)
    new = rows(sim, slice(len(first), len(sim)))
    grown = saved.rank(new.unlabeled()).model
    assert len(grown.counted.times) == len(first) + len(new)
    for column in ("entity", "type"):
        expected = saved.counted.value_counts(column).add(new.alerts[column].value_counts(), fill_value=0)
        assert grown.counted.value_counts(column).to_dict() == expected.astype(int).to_dict()
    # Saved and loaded again, then given the same alerts: already counted, the counts stay.
    again = SavedModel.load(grown.save(folder.parent / "grown")).rank(new.unlabeled()).model
    assert len(again.counted.times) == len(grown.counted.times)
    # An export overlapping the fit alerts by 50 adds only its 50 new alerts.
    overlap = rows(sim, np.arange(len(first) - 50, len(first) + 50))
    assert len(saved.rank(overlap.unlabeled()).model.counted.times) == len(first) + 50


def test_values_never_counted_are_reported_per_column(fitted, caplog):
    folder, first, _ = fitted
    saved = SavedModel.load(folder)
    batch = rows(first, slice(0, 300)).unlabeled()  # values all counted at fit ...
    alerts = batch.alerts.assign(time=batch.alerts["time"] + pd.Timedelta(days=30))  # ... alerts new
    alerts.loc[0:6, "type"] = "new.type_a"
    alerts.loc[7:9, "type"] = "new.type_b"
    alerts.loc[5:14, "user"] = "intruder"
    alerts.loc[20:22, "entity"] = "ws-new"
    with caplog.at_level(logging.INFO, logger="car.models.saved"):
        online = saved.rank(replace(batch, alerts=alerts))
    summary = online.unseen.summary()
    assert summary["alerts"] == 300 and summary["alerts_with_unseen_values"] == 18  # rows 0..14 and 20..22
    assert {c: v["alerts"] for c, v in summary["columns"].items() if v["alerts"]} == {"type": 10, "user": 10, "entity": 3}
    assert summary["columns"]["type"]["examples"] == ["new.type_a", "new.type_b"]
    assert summary["columns"]["user"]["new_values"] == 1
    assert "18 of 300 alerts have values the model never counted" in caplog.text
    assert "type 10 (2 new values)" in caplog.text and "user 10 (1 new value)" in caplog.text
    # The new values are ranked like any other: finite scores, counts from this batch on.
    assert np.isfinite(online.ranking.scores).all()
    assert online.ranking.columns["why"][0].startswith("type new.type_a seen 7 times in")
    alerts.loc[29, "type"] = "new.type_c"  # once: singular
    why = saved.rank(replace(batch, alerts=alerts)).ranking.columns["why"][29]
    assert why.startswith("type new.type_c seen 1 time in ") and " (1 burst)" in why, why
    assert online.model.counted.value_counts("entity")["ws-new"] == 3


def test_simulator_model_reads_car_simulate_csv_files(fitted, sim, tmp_path):
    folder, _, _ = fitted
    saved = SavedModel.load(folder)
    path = tmp_path / "sim.csv"
    write_simulation(path, **{k: v for k, v in SIM.items() if k != "format"})
    columns = ["alert_id", "time", "entity", "type", *sim.attributes]
    read = saved.read(path)
    pd.testing.assert_frame_equal(read.alerts[columns], sim.alerts[columns])
    assert read.label_kinds == ["attack"] and saved.read(path, ["labels=null"]).label_kinds == []


def test_model_saved_before_burst_counting_loads_and_counts_every_alert(fitted, tmp_path):
    """A manifest without ``ranking.burst_gap`` (saved before session 4) still loads, and ranks as
    such a model did: type rarity over every alert, no burst count in `why`."""
    import shutil

    folder, first, _ = fitted
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    manifest = json.loads((old / MANIFEST).read_text())
    del manifest["options"]["ranking"]["burst_gap"]
    (old / MANIFEST).write_text(json.dumps(manifest))
    saved = SavedModel.load(old)
    assert saved.car.options["ranking"]["burst_gap"] is None
    why = saved.rank(first.unlabeled()).ranking.columns["why"]
    assert not any("bursts)" in w for w in why)
    assert any("bursts)" in w for w in SavedModel.load(folder).rank(first.unlabeled()).ranking.columns["why"])
