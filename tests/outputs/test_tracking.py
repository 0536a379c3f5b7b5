"""MLflow tracking of a run (car/outputs/tracking.py): two processes on one store, and what a
run that never finishes still records."""

import os

import mlflow
import pytest
from omegaconf import OmegaConf

from car.outputs import tracking
from car.outputs.tracking import Tracker


@pytest.fixture
def restore_uri(monkeypatch):
    """MLflow's global tracking URI (and active run) restored after the test."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    previous = mlflow.get_tracking_uri()
    yield
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


def tracker(uri: str, experiment: str = "sweep") -> Tracker:
    return Tracker(OmegaConf.create({"backend": "mlflow", "tracking_uri": uri, "experiment_name": experiment}))


def test_a_new_experiment_created_meanwhile_by_another_process_is_used(tmp_path, monkeypatch, restore_uri):
    """Two sweeps starting a new experiment on one store at once: both see no experiment, one
    creates it, the other's create fails as a duplicate. That one must use the experiment, not
    stop with 'MLflow store ... is not usable' (seen in 2 of 5 simultaneous starts)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = tracker(uri)
    first.start("first")  # the other process: the experiment now exists
    first.end()
    lookup = mlflow.get_experiment_by_name
    calls = []

    def stale_lookup(name):  # this process looked before the other one created it
        calls.append(name)
        return None if len(calls) == 1 else lookup(name)

    monkeypatch.setattr(mlflow, "get_experiment_by_name", stale_lookup)
    second = tracker(uri)
    second.start("second")
    second.end()
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([lookup("sweep").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["first", "second"]


def test_a_new_store_is_opened_under_a_lock_that_other_processes_wait_for(tmp_path, monkeypatch, restore_uri):
    """Three runs starting at once on a new store: MLflow creates a store's tables on first use
    without a lock, and two of them stopped with 'MLflow store ... is not usable ((sqlite3.
    OperationalError) table metrics already exists)'. The store is opened holding an exclusive
    flock on its file, which another process's Tracker waits for: checked here from a second open
    file, whose non-blocking flock must be refused while the experiment is looked up."""
    fcntl = pytest.importorskip("fcntl")
    db = tmp_path / "mlflow.db"
    held = []
    ensure = tracking._ensure_experiment

    def probing(mlflow_module, name, uri):
        other = os.open(db, os.O_RDONLY | os.O_CREAT)
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append(False)
        except BlockingIOError:
            held.append(True)
        finally:
            os.close(other)
        ensure(mlflow_module, name, uri)

    monkeypatch.setattr(tracking, "_ensure_experiment", probing)
    run = tracker(f"sqlite:///{db}")
    run.start("first")
    run.end()
    assert held == [True]
    assert [r.info.run_name for r in mlflow.MlflowClient(f"sqlite:///{db}").search_runs(
        [mlflow.get_experiment_by_name("sweep").experiment_id])] == ["first"]


def test_a_run_that_fails_after_it_started_carries_its_config(tmp_path, monkeypatch, restore_uri):
    """A run that fails (or is killed) during the fit still carries its params (method, seed,
    ...), so that car compare can say which run did not finish; before, they were logged only
    with the metrics at the end."""
    from hydra import compose, initialize_config_dir

    from car.models.baselines import Rarity
    from car.pipeline import run
    from conftest import REPO

    def broken_fit(self, *args, **kwargs):
        raise RuntimeError("fit failed")

    monkeypatch.setattr(Rarity, "fit", broken_fit)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=["+experiment=enterprise", "model=rarity", "seed=3", "data.n_alerts=300",
                                          f"logger.tracking_uri={uri}", "logger.experiment_name=fails"])
    with pytest.raises(RuntimeError, match="fit failed"):
        run(cfg, tmp_path / "run")
    client = mlflow.MlflowClient(uri)
    (failed,) = client.search_runs([client.get_experiment_by_name("fails").experiment_id])
    assert failed.info.status == "FAILED"
    assert failed.data.params["seed"] == "3" and failed.data.params["model._target_"] == "car.models.baselines.Rarity"
    assert "config.yaml" in {a.path for a in client.list_artifacts(failed.info.run_id)}


def test_the_run_stays_running_until_ranked_and_evaluated(tmp_path, monkeypatch, restore_uri):
    """Lightning's MLFlowLogger marked the run FINISHED when the fit ended, before the ranking
    and the metrics: a run killed while ranking (out of memory) stayed FINISHED without metrics
    and car compare counted it. The run is RUNNING while ranking, FINISHED after."""
    from hydra import compose, initialize_config_dir

    from car.models.car import CAR
    from car.pipeline import run
    from conftest import REPO

    seen = []
    rank = CAR.rank

    def watched_rank(self, alerts):
        active = mlflow.active_run().info.run_id
        seen.append(mlflow.MlflowClient().get_run(active).info.status)
        return rank(self, alerts)

    monkeypatch.setattr(CAR, "rank", watched_rank)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=["+experiment=enterprise", "data.n_alerts=300", "trainer.max_epochs=1",
                                          "trainer.enable_progress_bar=false", f"logger.tracking_uri={uri}"])
    run(cfg, tmp_path / "run")
    assert seen == ["RUNNING"]
    client = mlflow.MlflowClient(uri)
    (done,) = client.search_runs([client.get_experiment_by_name("enterprise").experiment_id])
    assert done.info.status == "FINISHED" and "attack/raw/ap" in done.data.metrics


def test_only_finite_metrics_are_logged(tmp_path, restore_uri):
    """Tracker.log logs the finite metrics (its docstring, docs/outputs.md); an infinite value was
    logged as if it were one, since only NaN and None were left out."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = tracker(uri)
    run.start("metrics")
    run.log({"finite": 0.5, "nan": float("nan"), "inf": float("inf"), "minus_inf": float("-inf"), "none": None}, [])
    run.end()
    assert mlflow.MlflowClient(uri).get_run(run.run_id).data.metrics == {"finite": 0.5}


def test_artifacts_of_a_store_in_sqlite_uri_form_sit_beside_its_database(tmp_path, monkeypatch, restore_uri):
    """SQLite's URI form (``sqlite:///file:/path/mlflow.db?uri=true``): the artifacts went to
    ``file:/path/mlartifacts`` below the working directory, not beside the database."""
    monkeypatch.chdir(tmp_path)  # MLflow makes the URI form's file:/... folders in the working directory
    store = tmp_path / "store"
    store.mkdir()
    run = tracker(f"sqlite:///file:{store / 'mlflow.db'}?uri=true")
    run.start("first")
    run.end()
    location = mlflow.get_experiment_by_name("sweep").artifact_location
    assert location == (store / "mlartifacts" / "sweep").as_uri()
