"""End to end: `python train.py` in a subprocess, checking the CSV contract and MLflow."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, shared_file


def run_train(tmp_path: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, Path, str]:
    out = tmp_path / "run"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "train.py", *overrides, f"hydra.run.dir={out}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    return proc, out, uri


def check_csv_contract(out: Path, n_input: int) -> pd.DataFrame:
    ranked = pd.read_csv(out / "ranked_alerts.csv")
    rejected = pd.read_csv(out / "rejected_alerts.csv")
    ids = np.sort(np.concatenate([ranked["alert_id"].to_numpy(), rejected["alert_id"].to_numpy()]))
    assert np.array_equal(ids, np.arange(n_input)), "every input alert must be ranked or rejected exactly once"
    assert np.array_equal(ranked["rank"].to_numpy(), np.arange(1, len(ranked) + 1))
    assert np.all(np.diff(ranked["score"].to_numpy()) <= 0), "scores must not increase down the ranking"
    assert list(ranked.columns[:3]) == ["rank", "alert_id", "score"]
    assert pd.read_csv(out / "ranked_patterns.csv").columns[:3].tolist() == ["rank", "pattern_id", "score"]
    return ranked


def mlflow_run(uri: str, experiment: str):
    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=[experiment])
    assert len(runs) == 1
    run = runs.iloc[0]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.run_id)}
    return run, artifacts


def test_enterprise_run_writes_contract_and_logs_to_mlflow(tmp_path):
    import mlflow

    proc, out, uri = run_train(tmp_path, "+experiment=enterprise", "data.n_alerts=4000")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranked = check_csv_contract(out, n_input=len(pd.read_csv(out / "ranked_alerts.csv")) + len(pd.read_csv(out / "rejected_alerts.csv")))
    assert "label_attack" in ranked.columns
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 < metrics["attack/raw/ap"] <= 1.0
    run, artifacts = mlflow_run(uri, "enterprise")
    assert run["status"] == "FINISHED"
    assert run["metrics.attack/raw/ap"] == pytest.approx(metrics["attack/raw/ap"])
    assert run["params.data.n_alerts"] == "4000"
    # 30 training steps (one per epoch), metrics written every trainer.log_every_n_steps = 5 of them
    client = mlflow.MlflowClient()
    for key in ("train/loss", "train/temporal_nll", "train/nce"):
        steps = [m.step for m in client.get_metric_history(run.run_id, key)]
        assert np.diff(steps).tolist() == [5] * 5, (key, steps)
    assert {"ranked_alerts.csv", "ranked_patterns.csv", "rejected_alerts.csv", "metrics.json", "config.yaml",
            "attack_graph.graphml", "attack_patterns.png", "score_histogram.png", "precision_recall.png",
            "report.html"} <= artifacts


def test_ait_ads_shaw_rarity_ranks_every_alert_with_both_label_kinds(tmp_path):
    path = shared_file("ait-ads", "shaw_alerts.csv.gz")
    proc, out, uri = run_train(tmp_path, "data=ait_ads", f"data.path={path}", "model=rarity")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranked = check_csv_contract(out, n_input=70_782)
    assert len(ranked) == 70_782
    run, _ = mlflow_run(uri, "car")
    for kind in ("strict", "window"):
        assert 0.0 < run[f"metrics.{kind}/raw/ap"] < 1.0
        assert 0.0 < run[f"metrics.{kind}/grouped/ap"] < 1.0


def test_bad_input_is_one_line_error_without_traceback(tmp_path):
    bad = tmp_path / "alerts.csv"
    bad.write_text("when,who,what\n2024-01-01T00:00:00Z,h1,scan\n")
    proc, _, _ = run_train(tmp_path, "data=csv", f"data.path={bad}", "logger=none")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "alerts.csv" in proc.stderr + proc.stdout


def test_an_output_file_that_cannot_be_written_is_one_line_error(tmp_path):
    (tmp_path / "run" / "ranked_alerts.csv").mkdir(parents=True)  # a folder where the CSV goes
    proc, out, _ = run_train(tmp_path, "+experiment=enterprise", "data.n_alerts=500", "logger=none")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert f"{out / 'ranked_alerts.csv'}: Is a directory" in proc.stderr + proc.stdout


def test_unusable_mlflow_store_fails_before_fitting(tmp_path):
    out = tmp_path / "run"
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{blocker}/mlflow.db", "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.run(
        [sys.executable, "train.py", "+experiment=enterprise", "data.n_alerts=500", f"hydra.run.dir={out}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert "MLflow store" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (out / "ranked_alerts.csv").exists()


def test_a_killed_run_ends_failed_in_mlflow_not_finished(tmp_path):
    import time

    import mlflow
    out, uri = tmp_path / "run", f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "train.py", "+experiment=enterprise", "data.n_alerts=300000", "trainer.max_steps=100000",
         "trainer.max_epochs=1000", f"hydra.run.dir={out}"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    log, deadline = out / "train.log", time.monotonic() + 300
    while not (log.is_file() and "GPU available" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.5)  # the MLflow run has started once the Trainer reports its devices
    proc.terminate()
    assert proc.wait(timeout=120) == 128 + 15
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("enterprise").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_a_checkpoint_resumes_given_back_as_a_plain_override(tmp_path):
    """trainer.enable_checkpointing=true writes a checkpoint whose path can be passed back as
    trainer.ckpt_path=<file> unquoted (Lightning's epoch=N-step=M.ckpt was a Hydra parse error)."""
    first, out, _ = run_train(tmp_path, "data.n_alerts=3000", "trainer.max_epochs=3", "trainer.enable_checkpointing=true",
                              "logger=none")
    assert first.returncode == 0, first.stderr[-3000:]
    (checkpoint,) = out.rglob("*.ckpt")
    assert "=" not in checkpoint.name, checkpoint
    resumed, again, _ = run_train(tmp_path / "resumed", "data.n_alerts=3000", "trainer.max_epochs=5",
                                  f"trainer.ckpt_path={checkpoint}", "logger=none")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restored all states from the checkpoint" in resumed.stderr + resumed.stdout + (again / "train.log").read_text()


def test_a_failing_job_of_a_sweep_does_not_stop_the_other_jobs(tmp_path):
    """`-m seed=-1,0`: the invalid job fails with its one line and the valid one still runs
    (Hydra's way for a failed job: the sweep goes on, then reports the first failure and exits
    1); before, the failed job's sys.exit(2) ended the whole sweep there."""
    sweep = tmp_path / "sweep"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "train.py", "-m", "+experiment=enterprise", "model=rarity", "seed=-1,0", "data.n_alerts=300",
         "logger=none", f"hydra.sweep.dir={sweep}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert (sweep / "1" / "ranked_alerts.csv").is_file()  # the job after the failed one ran
    assert "seed=-1 must be a whole number >= 0" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
