"""Security: nothing in the package evaluates data or config as code, the model config can
only build an AlertRanker, and an unusable MLflow store stops the run before fitting with one
line. (Formula neutralisation end to end: test_train_e2e.py.)"""

from __future__ import annotations

import os
import re
import sqlite3

import pytest
from omegaconf import OmegaConf

from car.errors import ConfigError
from car.models.baselines import Rarity
from car.models.peer_inputs import import_peer
from car.pipeline import build_model
from reliability_helpers import CALLS, REPO

SOURCES = sorted((REPO / "car").rglob("*.py")) + [REPO / "train.py"]


def code_lines(pattern: str) -> list[str]:
    """``file:line: text`` of every source line matching ``pattern`` (comments excluded)."""
    found = []
    for path in SOURCES:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            if re.search(pattern, code):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    return found


@pytest.mark.parametrize(
    "pattern",
    [
        r"(?<![\w.])eval\(", r"(?<![\w.])exec\(", r"(?<![\w.])compile\(", r"\bpickle\b", r"\bdill\b", r"\bmarshal\b",
        r"\bshelve\b", r"\bjoblib\b", r"yaml\.(unsafe_)?load\(", r"shell\s*=\s*True", r"os\.system\(", r"__import__\(",
        r"literal_eval",
    ],
)
def test_no_code_evaluates_data_or_config(pattern):
    assert code_lines(pattern) == []


def test_checkpoints_load_only_with_weights_only():
    loads = code_lines(r"torch\.load\(|\.load_from_checkpoint\(|\.fit\(.*ckpt_path")
    assert loads, "the resume path (Trainer.fit with ckpt_path) should be found"
    assert all("weights_only=True" in line for line in loads), loads
    assert not code_lines(r"\.load_from_checkpoint\(")
    assert OmegaConf.load(REPO / "conf" / "trainer" / "cpu.yaml").enable_checkpointing is False


def test_dynamic_imports_are_fixed_tables_or_checked():
    """importlib is used by the loader table (a fixed FORMATS mapping), the peers' fixed package
    names and the model check."""
    imports = code_lines(r"import_module\(|\binstantiate\(")
    assert [line.split(":")[0] for line in imports] == [
        "car/data/__init__.py", "car/models/peer_inputs.py", "car/pipeline.py", "car/pipeline.py"], imports
    with pytest.raises(ValueError, match="not a peer package"):
        import_peer("os", "deepcase")


@pytest.mark.parametrize(
    ("cfg", "needle"),
    [
        ({"_target_": "reliability_helpers.record_call"}, "is not an AlertRanker"),
        ({"_target_": "os.system", "_args_": ["echo pwned"]}, "model._target_=os.system is not an AlertRanker"),
        ({"_target_": "subprocess.Popen", "_args_": [["true"]]}, "is not an AlertRanker"),
        ({"_target_": "no.such.Model"}, "cannot be imported"),
        ({"_target_": ""}, "cannot be imported"),
    ],
)
def test_model_config_can_only_build_an_alert_ranker(cfg, needle):
    CALLS.clear()
    with pytest.raises(ConfigError, match=re.escape(needle)):
        build_model(OmegaConf.create(cfg))
    assert CALLS == [], "the target must not be called"


def test_nested_targets_are_not_instantiated():
    CALLS.clear()
    cfg = OmegaConf.create({"_target_": "car.models.baselines.Rarity",
                            "counts_from": {"_target_": "reliability_helpers.record_call"}})
    with pytest.raises(ConfigError, match="model config car.models.baselines.Rarity: model.counts_from="):
        build_model(cfg)
    assert CALLS == []
    assert isinstance(build_model(OmegaConf.create({"_target_": "car.models.baselines.Rarity"})), Rarity)


# --- an unusable MLflow store stops the run before fitting ------------------------------------


@pytest.fixture
def tracker(monkeypatch):
    """A Tracker factory for a store URI; MLflow's global tracking URI is restored afterwards."""
    import mlflow

    from car.outputs.tracking import Tracker

    monkeypatch.setenv("MLFLOW_TRACKING_URI", os.environ.get("MLFLOW_TRACKING_URI", ""))
    previous = mlflow.get_tracking_uri()
    yield lambda uri: Tracker(OmegaConf.create({"backend": "mlflow", "tracking_uri": uri, "experiment_name": "t"}))
    mlflow.set_tracking_uri(previous)


def test_locked_store_is_one_clear_error(tmp_path, tracker):
    db = tmp_path / "mlflow.db"
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another process writing; timeout=0.1 s keeps the test short
    try:
        with pytest.raises(ConfigError) as err:
            tracker(f"sqlite:///{db}?timeout=0.1").start("run")
    finally:
        lock.close()
    message = str(err.value)
    assert "MLflow store" in message and "database is locked" in message and "logger=none" in message
    assert "\n" not in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions: a chmod-read-only store is writable")
def test_read_only_folder_store_is_one_clear_error(tmp_path, tracker):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="MLflow store .* is not usable"):
            tracker(f"sqlite:///{folder}/mlflow.db").start("run")
    finally:
        folder.chmod(0o700)


@pytest.fixture
def read_only_store(tmp_path, tracker, monkeypatch):
    """The URI of an existing MLflow store opened read-only (as on a read-only mount; works as root).
    The file must exist: MLflow retries a file it cannot open for about 100 s before failing.
    MLflow makes the folders of SQLite's URI form (``file:/...``) relative to the working
    directory: the test runs in its own."""
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "mlflow.db"
    store = tracker(f"sqlite:///{db}")
    store.start("first")
    store.end()
    return f"sqlite:///file:{db}?mode=ro&uri=true"


def test_read_only_store_stops_before_fitting(tracker, read_only_store):
    with pytest.raises(ConfigError) as err:
        tracker(read_only_store).start("run")
    assert str(err.value).startswith("MLflow store sqlite:///file:") and "\n" not in str(err.value)
    assert "logger=none" in str(err.value)


def test_read_only_store_error_names_the_cause_without_traceback(tracker, read_only_store, capfd):
    capfd.readouterr()
    with pytest.raises(ConfigError) as err:
        tracker(read_only_store).start("run")
    output = "".join(capfd.readouterr())
    assert "readonly database" in str(err.value)
    assert "Traceback" not in output
