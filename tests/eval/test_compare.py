"""`car compare` on a tiny real experiment: rarity and a short CAR, two seeds, one simulated
scenario, run through the pipeline into a temporary MLflow store."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from car.cli import main
from car.errors import ConfigError
from car.eval.compare import SUMMARY_TAG, compare, mixed_settings, unnamed_variants
from car.pipeline import run
from conftest import REPO

METHODS, SEEDS = ("rarity", "car"), (0, 1)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """(tracking uri, {(method, seed): metrics}) of the four runs to compare in experiment
    synthetic_sweep, after an earlier run of rarity seed 0 on other data that they replace."""
    tmp = tmp_path_factory.mktemp("compare")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    metrics = {}
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        for method, seed, n_alerts in [("rarity", 0, 1200)] + [(m, s, 1500) for m in METHODS for s in SEEDS]:
            cfg = compose("train", overrides=[
                "+experiment=synthetic_sweep", f"model={method}", f"method={method}", f"seed={seed}",
                f"data.n_alerts={n_alerts}", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
                f"logger.tracking_uri={uri}"])
            metrics[method, seed] = run(cfg, tmp / f"{method}-{seed}-{n_alerts}")
    return uri, metrics


def test_compare_gives_mean_and_spread_over_seeds(experiment, tmp_path):
    uri, metrics = experiment
    comparison, summary_id = compare("synthetic_sweep", uri, tmp_path, ("attack/raw/ap", "attack/grouped/workload_at_95", "patterns/*"))
    runs = comparison.runs
    assert comparison.replaced == 1  # the earlier rarity seed 0 run
    assert sorted(zip(runs["method"], runs["seed"])) == sorted((m, str(s)) for m in METHODS for s in SEEDS)
    assert set(runs["scenario"]) == {"attack_fraction=0.03"} and set(runs["protocol"]) == {""}
    table = comparison.table.set_index(["method", "metric"])
    for method in METHODS:
        for metric in ("attack/raw/ap", "attack/grouped/workload_at_95"):
            values = [metrics[method, seed][metric] for seed in SEEDS]
            row = table.loc[(method, metric)]
            assert row["mean"] == pytest.approx(np.mean(values)) and row["std"] == pytest.approx(np.std(values, ddof=1))
            assert (row["min"], row["max"], row["seeds"]) == (pytest.approx(min(values)), pytest.approx(max(values)), 2)
    assert ("car", "patterns/campaign_recall_at_5") in table.index  # the pattern metrics reach MLflow
    assert not any(m == "rarity" and k.startswith("patterns/") for m, k in table.index)  # no patterns, no metric
    written = pd.read_csv(tmp_path / "comparison.csv")
    assert len(written) == len(comparison.table)
    assert written["mean"].to_numpy() == pytest.approx(comparison.table["mean"].to_numpy())
    text = (tmp_path / "comparison.md").read_text()
    car_ap = table.loc[("car", "attack/raw/ap")]
    assert f"| car | attack_fraction=0.03 |  | 2 | {car_ap['mean']:.3f} ± {car_ap['std']:.3f} |" in text
    for picture in ("bars_attack_raw_ap.png", "bars_patterns_campaign_recall_at_5.png", "pr_attack_fraction_0.03_attack.png"):
        assert (tmp_path / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    client = mlflow.MlflowClient(uri)
    summary = client.get_run(summary_id)
    assert summary.data.tags[SUMMARY_TAG] == "true"
    assert {"comparison.csv", "comparison.md", "bars_attack_raw_ap.png"} <= {a.path for a in client.list_artifacts(summary_id)}


def test_summary_runs_are_not_compared_again_and_cli_prints_the_table(experiment, tmp_path, capsys):
    uri, metrics = experiment
    out = tmp_path / "cli"
    args = ["compare", "--experiment", "synthetic_sweep", "--tracking-uri", uri, "--out", str(out), "--no-curves",
            "--metrics", "attack/raw/ap"]
    assert main(args) == 0 and main(args) == 0  # the first call's summary run is left out by the second
    printed = capsys.readouterr().out
    assert printed.count("compared 4 runs (1 earlier run replaced by re-runs left out)") == 2
    assert "| method | scenario | protocol | runs | attack/raw/ap |" in printed
    assert sorted(p.name for p in out.iterdir()) == ["bars_attack_raw_ap.png", "comparison.csv", "comparison.md", "overall.csv"]
    rarity = [metrics["rarity", seed]["attack/raw/ap"] for seed in SEEDS]
    assert f"| rarity | attack_fraction=0.03 |  | 2 | {np.mean(rarity):.3f} ± {np.std(rarity, ddof=1):.3f} |" in printed


def test_compare_errors_are_one_line(experiment, tmp_path, capsys):
    uri, _ = experiment
    assert main(["compare", "--experiment", "nope", "--tracking-uri", uri, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("car: error: no MLflow experiment 'nope'") and "synthetic_sweep" in err and err.count("\n") == 1
    missing = tmp_path / "absent" / "mlflow.db"
    assert main(["compare", "--experiment", "x", "--tracking-uri", f"sqlite:///{missing}"]) == 2
    assert "no MLflow store at" in capsys.readouterr().err and not missing.exists()
    assert main(["compare", "--experiment", "synthetic_sweep", "--tracking-uri", uri, "--out", str(tmp_path),
                 "--metrics", "no/such/*"]) == 2
    assert "no metric of the runs matches --metrics no/such/*" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written on error


def test_overall_averages_scenario_means_per_method_and_protocol():
    from car.eval.compare import overall, overall_markdown
    table = pd.DataFrame({
        "method": ["car", "car", "car", "peer"], "scenario": ["a", "b", "a", "a"], "protocol": ["p2"] * 4,
        "metric": ["ap", "ap", "wl", "ap"], "mean": [0.5, 0.9, 0.3, 0.8],
    })
    summary = overall(table).set_index(["method", "metric"])
    assert summary.loc[("car", "ap"), "mean"] == pytest.approx(0.7) and summary.loc[("car", "ap"), "scenarios"] == 2
    assert summary.loc[("peer", "ap"), "scenarios"] == 1 and summary.loc[("car", "wl"), "mean"] == pytest.approx(0.3)
    text = overall_markdown(overall(table))
    assert "| car | p2 | 0.700 (2) | 0.300 (1) |" in text and "| peer | p2 | 0.800 (1) |  |" in text


def test_metrics_whose_file_names_would_be_the_same_get_a_picture_each():
    from car.eval.compare import bar_pictures
    table = pd.DataFrame({"method": ["car"] * 3, "scenario": ["a"] * 3, "protocol": ["p1"] * 3,
                          "metric": ["x y", "x_y", "x/y"], "mean": [0.5, 0.6, 0.7], "std": [0.0] * 3})
    pictures = bar_pictures(table)
    assert sorted(pictures) == ["bars_x_y.png", "bars_x_y_2.png", "bars_x_y_3.png"]
    assert len(set(pictures.values())) == 3


def test_one_run_that_did_not_finish_is_named_in_the_singular():
    from car.eval.compare import unfinished_runs
    runs = pd.DataFrame({"method": ["car", "car"], "scenario": ["sim"] * 2, "protocol": ["", ""], "seed": ["1", "2"],
                         "status": ["FINISHED", "FAILED"]})
    note = unfinished_runs(runs[runs["status"] != "FINISHED"], runs[runs["status"] == "FINISHED"])
    assert note.startswith("note: 1 run did not finish and is left out (FAILED 1): car sim seed 2 (FAILED); "
                           "re-run it (RUNNING:"), note


def test_replaced_runs_that_set_a_model_option_differently_get_a_note():
    """A sweep over a model option without method names looks like re-runs: only the latest is
    compared, and the note says so and how to name the variants. Other data under one scenario, or
    an option one run lacks (added since), is a plain re-run."""
    runs = pd.DataFrame({"method": ["car"] * 3, "scenario": ["s"] * 3, "protocol": [""] * 3, "seed": ["0"] * 3})
    found = pd.DataFrame({"params.model.ranking.gamma": ["0.5", "2.0", None], "params.data.n_alerts": ["1", "2", "3"],
                          "params.model.ranking.beta": [None, "0.5", "0.5"], "params.scenario": ["s"] * 3})
    note = unnamed_variants(runs, found)
    assert note.startswith("note: runs of method=car (scenario s, protocol -, seed 0) differ in model.ranking.gamma "
                           "(0.5 / 2.0); only the latest is compared") and "method=<name>" in note
    assert unnamed_variants(runs, found.drop(columns="params.model.ranking.gamma")) == ""
    other_seeds = runs.assign(seed=["0", "1", "2"])
    assert unnamed_variants(other_seeds, found) == ""


def test_replaced_runs_that_set_a_training_option_differently_get_a_note():
    """A sweep trainer.max_steps=10,60 of model=car was compared as re-runs of one method without a
    word (AP 0.469 and 0.455 on 3,000 simulated alerts, only the latest kept). Options that leave
    the ranking as it is, and models that no Trainer fits (rarity), are no variants."""
    runs = pd.DataFrame({"method": ["car"] * 2, "scenario": ["enterprise_sim"] * 2, "protocol": [""] * 2, "seed": ["0"] * 2})
    found = pd.DataFrame({"params.model._target_": ["car.models.car.CAR"] * 2, "params.trainer.max_steps": ["60", "10"],
                          "params.trainer.enable_progress_bar": ["True", "False"], "params.data.n_alerts": ["3000"] * 2})
    note = unnamed_variants(runs, found)
    assert note.startswith("note: runs of method=car (scenario enterprise_sim, protocol -, seed 0) differ in "
                           "trainer.max_steps (60 / 10); only the latest is compared") and "method=<name>" in note, note
    assert "trainer.max_steps (60 / 10) from seed to seed" in mixed_settings(runs.assign(seed=["0", "1"]), found)
    assert unnamed_variants(runs, found.drop(columns="params.trainer.max_steps")) == ""
    rarity = found.assign(**{"params.model._target_": "car.models.baselines.Rarity"})
    assert unnamed_variants(runs.assign(method="rarity"), rarity) == ""


def test_runs_that_did_not_finish_are_named_not_left_out_silently(tmp_path, monkeypatch):
    """A sweep over seeds 0-3 of which seed 2 failed and seed 3 was killed (RUNNING): the cell
    averages seeds 0 and 1, and the comparison says which runs are missing and why. A failed
    run that a finished re-run repeats is not named; an experiment with only unfinished runs
    says so in its error."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        experiment_id = mlflow.create_experiment("sweep", artifact_location=(tmp_path / "art").as_uri())
        only_failed = mlflow.create_experiment("broken", artifact_location=(tmp_path / "art2").as_uri())
        for seed, status, ap in [(0, "FAILED", None), (0, "FINISHED", 0.5), (1, "FINISHED", 0.7), (2, "FAILED", None),
                                 (3, "RUNNING", None)]:
            mlflow.start_run(experiment_id=experiment_id, run_name="car:sim")
            mlflow.log_params({"method": "car", "scenario": "sim", "seed": seed})
            if ap is not None:
                mlflow.log_metric("attack/raw/ap", ap)
            if status != "RUNNING":
                mlflow.end_run(status)
            else:  # killed: nobody ended it
                mlflow.MlflowClient().update_run(mlflow.active_run().info.run_id, status="RUNNING")
                mlflow.end_run("RUNNING")
        mlflow.start_run(experiment_id=only_failed, run_name="car:sim")
        mlflow.end_run("FAILED")
    finally:
        mlflow.set_tracking_uri(previous)
    comparison, _ = compare("sweep", uri, tmp_path / "out", ("attack/raw/ap",), curves=False)
    assert comparison.table["mean"].tolist() == [pytest.approx(0.6)] and comparison.table["seeds"].tolist() == [2]
    assert comparison.unfinished.startswith("note: 2 runs did not finish and are left out (FAILED 1, RUNNING 1): "
                                            "car sim seed 2 (FAILED), car sim seed 3 (RUNNING)")
    with pytest.raises(ConfigError, match=r"'broken' has no finished runs to compare \(1 run there did not finish: FAILED 1\)"):
        compare("broken", uri, tmp_path / "out2", ("attack/raw/ap",), curves=False)


def test_a_tracking_uri_mlflow_cannot_read_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    """A plain path or a file:// URI (MLflow's retired file store) gave MLflow's traceback; now one
    line naming the URI and the fix. A sqlite URI with options (?timeout=60, as for two sweeps on
    one store) names the same file and is read."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    previous = mlflow.get_tracking_uri()
    try:
        for uri in (str(tmp_path / "runs"), (tmp_path / "runs").as_uri()):
            assert main(["compare", "--experiment", "x", "--tracking-uri", uri, "--out", str(tmp_path / "out")]) == 2
            err = capsys.readouterr().err
            assert err.startswith(f"car: error: MLflow store {uri} cannot be read (MlflowException: ") and err.count("\n") == 1
            assert "--tracking-uri sqlite:///" in err and "Traceback" not in err
        db = tmp_path / "mlflow.db"
        mlflow.set_tracking_uri(f"sqlite:///{db}")
        mlflow.create_experiment("there", artifact_location=(tmp_path / "art").as_uri())
        assert main(["compare", "--experiment", "absent", "--tracking-uri", f"sqlite:///{db}?timeout=60"]) == 2
        assert "no MLflow experiment 'absent'" in capsys.readouterr().err  # the store was found and read
    finally:
        mlflow.set_tracking_uri(previous)


def test_replaced_runs_on_other_data_of_an_unnamed_scenario_get_a_note():
    """Without a scenario param the scenario is the input's file name: every simulator setting is
    'enterprise_sim', and site_a/alerts.csv and site_b/alerts.csv are both 'alerts.csv'. Runs on
    other data there are variants, not re-runs: the note names the data option and
    scenario=<name>. Under a named scenario (ait_ads) other data is still a re-run."""
    runs = pd.DataFrame({"method": ["car"] * 2, "scenario": ["alerts.csv"] * 2, "protocol": [""] * 2, "seed": ["0"] * 2})
    found = pd.DataFrame({"params.data.path": ["site_a/alerts.csv", "site_b/alerts.csv"], "params.model.lr": ["0.1"] * 2})
    note = unnamed_variants(runs, found)
    assert note.startswith("note: runs of method=car (scenario alerts.csv, protocol -, seed 0) differ in data.path "
                           "(site_a/alerts.csv / site_b/alerts.csv); only the latest is compared") and "scenario=<name>" in note
    named = found.assign(**{"params.scenario": ["fox", "fox"]})
    assert unnamed_variants(runs.assign(scenario="fox"), named) == ""


def test_compared_runs_that_mix_settings_across_seeds_get_a_note():
    """Two sweeps into one experiment, seeds 0-1 on 5,000 simulated alerts and seeds 2-3 on 3,000,
    were averaged as one cell without a word. Options that follow the seed are no mix; other data
    under a named scenario is a re-run, as for `unnamed_variants`."""
    runs = pd.DataFrame({"method": ["car"] * 4, "scenario": ["enterprise_sim"] * 4, "protocol": [""] * 4,
                         "seed": ["0", "1", "2", "3"]})
    found = pd.DataFrame({"params.data.n_alerts": ["5000", "5000", "3000", "3000"],
                          "params.data.seed": ["0", "1", "2", "3"], "params.model.seed": ["0", "1", "2", "3"],
                          "params.data.format": ["enterprise_sim"] * 4, "params.model.lr": ["0.05"] * 4},
                         index=[7, 3, 5, 1])
    note = mixed_settings(runs, found)
    assert note.startswith("note: the compared runs of method=car (scenario enterprise_sim, protocol -) differ in "
                           "data.n_alerts (5000 / 3000) from seed to seed, so their mean mixes these settings: ")
    assert "scenario=<name>" in note, note
    assert mixed_settings(runs, found.drop(columns="params.data.n_alerts")) == ""
    assert mixed_settings(runs, found.assign(**{"params.scenario": "sim-5k"})) == ""
    lr = found.assign(**{"params.model.lr": ["0.05", "0.05", "0.1", "0.05"], "params.scenario": "sim"})
    assert "differ in model.lr (0.05 / 0.1)" in mixed_settings(runs, lr) and "method=<name>" in mixed_settings(runs, lr)
    assert mixed_settings(runs.assign(method=["a", "a", "b", "b"]), found) == ""


def test_a_read_only_store_is_compared_without_a_summary_run(tmp_path, capsys, monkeypatch):
    """A store opened read-only (a colleague's, a read-only mount; SQLite's URI form, which the
    store check took for a missing file) is compared: the files are written and the summary run
    that cannot be written is reported in the last line, not as a traceback."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # MLflow makes the URI form's file:/... folders in the working directory
    previous = mlflow.get_tracking_uri()
    db = tmp_path / "mlflow.db"
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    try:
        experiment_id = mlflow.create_experiment("sweep", artifact_location=(tmp_path / "art").as_uri())
        for seed, ap in [(0, 0.5), (1, 0.7)]:
            with mlflow.start_run(experiment_id=experiment_id, run_name="car:sim"):
                mlflow.log_params({"method": "car", "scenario": "sim", "seed": seed})
                mlflow.log_metric("attack/raw/ap", ap)
        out = tmp_path / "out"
        assert main(["compare", "--experiment", "sweep", "--tracking-uri", f"sqlite:///file:{db}?mode=ro&uri=true",
                     "--out", str(out), "--no-curves", "--metrics", "attack/raw/ap"]) == 0
    finally:
        mlflow.set_tracking_uri(previous)
    printed = capsys.readouterr().out
    assert "| car | sim |  | 2 | 0.600 ± 0.141 |" in printed
    assert printed.splitlines()[-1].endswith("not logged to MLflow: the store cannot be written "
                                             "((sqlite3.OperationalError) attempt to write a readonly database)")
    assert (out / "comparison.csv").is_file()
