"""MLflow tracking of a run: resolved config, metrics and output files."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from car.errors import ConfigError, error_line

REPO_ROOT = Path(__file__).resolve().parents[2]


def tracking_uri(configured: str | None) -> str:
    """The tracking URI: the configured one, else ``sqlite:///<repo>/mlflow.db``."""
    if configured:
        return str(configured)
    root = REPO_ROOT if (REPO_ROOT / "pyproject.toml").exists() else Path.cwd()
    return f"sqlite:///{root / 'mlflow.db'}"


class Tracker:
    """One MLflow run, or nothing when ``logger.backend`` is ``none``."""

    def __init__(self, cfg: DictConfig) -> None:
        self.backend = cfg.get("backend", "mlflow")
        if self.backend not in {"mlflow", "none"}:
            raise ConfigError(f"logger.backend={self.backend!r} is not known; use logger=mlflow or logger=none")
        self.cfg = cfg
        self.run_id: str | None = None
        self.uri: str | None = None

    def start(self, run_name: str) -> None:
        """Open the store and start a run; fails with one line if the store is unusable."""
        if self.backend == "none":
            return
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow

        self.uri = tracking_uri(self.cfg.get("tracking_uri"))
        mlflow.set_tracking_uri(self.uri)
        # MLflow logs a traceback of store errors itself; ours is the one-line ConfigError below.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        try:
            with store_lock(self.uri):
                _ensure_experiment(mlflow, self.cfg.get("experiment_name", "car"), self.uri)
                self.run_id = mlflow.start_run(run_name=run_name).info.run_id
        except Exception as err:  # any store failure must stop the run before fitting
            raise ConfigError(
                f"MLflow store {self.uri} is not usable ({store_error_line(err)}); set MLFLOW_TRACKING_URI "
                "to a writable sqlite:///path/mlflow.db or run with logger=none"
            ) from None

    def lightning_logger(self) -> Any:
        """A Lightning logger writing into this run that leaves ending it to ``end``, or ``False``."""
        if self.run_id is None:
            return False
        from car.outputs.run_logger import RunLogger

        return RunLogger(tracking_uri=self.uri, run_id=self.run_id)

    def log_config(self, config: DictConfig) -> None:
        """Log the resolved config (params and YAML) as soon as the run starts, so that a run
        that fails or is killed later still says which method, scenario and seed it was."""
        if self.run_id is None:
            return
        import mlflow

        flat = _flatten(OmegaConf.to_container(config, resolve=True))
        mlflow.log_params({k: str(v)[:6000] for k, v in flat.items()})
        mlflow.log_text(OmegaConf.to_yaml(config, resolve=True), "config.yaml")

    def log(self, metrics: dict[str, float], files: list[Path]) -> None:
        """Log the finite metrics and the output files."""
        if self.run_id is None:
            return
        import mlflow

        finite = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}
        if finite:
            mlflow.log_metrics(finite)
        if self.cfg.get("log_artifacts", True):
            for path in files:
                mlflow.log_artifact(str(path))

    def log_model(self, model_dir: Path | None) -> None:
        """Log a saved model folder as the run's MLflow pyfunc model ``model`` (not with
        ``logger.log_artifacts=false``, nor without a folder)."""
        if self.run_id is None or model_dir is None or not self.cfg.get("log_artifacts", True):
            return
        from car.outputs.mlflow_model import log_pyfunc

        log_pyfunc(model_dir)

    def end(self, status: str = "FINISHED") -> None:
        """End the run with ``status`` (MLflow's FINISHED or FAILED); nothing without a run."""
        if self.run_id is not None:
            import mlflow

            mlflow.end_run(status=status)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None. Options after ``?``
    (``sqlite:///mlflow.db?timeout=60``) are not part of the file name, nor is the ``file:`` of
    SQLite's URI form (``sqlite:///file:/path/mlflow.db?mode=ro&uri=true``)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?")[0].removeprefix("file:"))


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock (``flock``) on a sqlite store's file. MLflow creates a new store's
    tables on first use without one, so processes that start on a new store at once (two sweeps,
    a job array) failed: "table metrics already exists". Without a lock where none can be taken
    (Windows, a file that cannot be opened for writing: MLflow's own error says why, a file
    system without locks)."""
    path = sqlite_path(uri)
    try:
        import fcntl

        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666) if path is not None else None
    except (ImportError, OSError):
        handle = None
    if handle is None:
        yield
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # e.g. a network mount that refuses locks: open the store as before
            pass
        yield
    finally:
        os.close(handle)  # releases the lock


def store_error_line(err: BaseException) -> str:
    """The most telling line of a store error: the database driver's own, if it has one."""
    lines = [line.strip() for line in str(err).splitlines()]
    driver = [line for line in lines if line.startswith("(sqlite3.") or "readonly" in line or "locked" in line]
    return driver[0] if driver else error_line(err)


def _ensure_experiment(mlflow: Any, name: str, uri: str) -> None:
    """Select experiment ``name``; a new one on a sqlite store keeps its artifacts beside
    the database (MLflow's default, ``./mlruns``, depends on the working directory)."""
    database = sqlite_path(uri)
    if database is not None and mlflow.get_experiment_by_name(name) is None:
        folder = database.parent / "mlartifacts" / name
        try:
            mlflow.create_experiment(name, artifact_location=folder.resolve().as_uri())
        except mlflow.exceptions.MlflowException as err:
            # Another process (a second sweep on the same store) created it since the look-up.
            if err.error_code != "RESOURCE_ALREADY_EXISTS" or mlflow.get_experiment_by_name(name) is None:
                raise
    mlflow.set_experiment(name)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dict to ``{"a.b.c": value}``."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}{key}."))
    return out
