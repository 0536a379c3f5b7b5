"""A saved CAR model as an MLflow pyfunc model: ``mlflow.pyfunc.load_model(uri).predict(frame)``
ranks a DataFrame of new alerts online (car/models/saved.py) and returns the ranked alerts as
ranked_alerts.csv holds them (ISO times, formulas neutralised).

It is logged as MLflow "models from code": MLflow runs car/outputs/mlflow_model_code.py to build
it. The saved model folder is its artifact ``car_model``, the car package goes along as code and
the package's dependencies as requirements, so ``mlflow models serve -m <uri>`` works where full
mlflow is installed (the ``ui`` extra). A served model keeps no counts between requests: each
frame is ranked against the saved counts.
"""

from __future__ import annotations

import logging
import os
import tempfile
from importlib.metadata import requires
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from pandas.api.types import is_float_dtype

from car.alerts import AlertTable
from car.data import load_alerts
from car.errors import DataError
from car.models.saved import SavedModel
from car.outputs.files import iso_times, neutralise_formulas
from car.outputs.ranked import ranked_alerts

ARTIFACT = "car_model"
MODEL_CODE = Path(__file__).with_name("mlflow_model_code.py")
PACKAGE = Path(__file__).resolve().parents[1]

log = logging.getLogger(__name__)


class CARPyfunc(mlflow.pyfunc.PythonModel):
    """The pyfunc model: loads the saved model folder once, ranks each frame it is given."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.saved = SavedModel.load(context.artifacts[ARTIFACT])

    def predict(self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Ranked alerts (one row per usable alert, rank order) of the alerts in ``model_input``.
        Rows that cannot be used are not dropped silently: they are logged (a warning with the
        first reason) and returned in ``result.attrs["rejected"]`` (alert_id, source, reason, raw)."""
        table = frame_alerts(model_input, self.saved)
        online = self.saved.rank(table.unlabeled())
        result = iso_times(neutralise_formulas(ranked_alerts(table, online.ranking)))
        result.attrs["rejected"] = neutralise_formulas(table.rejected.reset_index(drop=True))
        if len(table.rejected):
            first = table.rejected.iloc[0]
            log.warning("ranked %d of %d rows; %d rejected (first: %s: %s); see the result's attrs['rejected']",
                        len(result), table.n_input, len(table.rejected), first["source"], first["reason"])
        return result


def frame_alerts(frame: pd.DataFrame, saved: SavedModel) -> AlertTable:
    """The alerts of ``frame``. Its columns are either the canonical ones (time, entity, type,
    the model's attributes, optional ``label_<kind>``) or, for a model fitted on CSV, Parquet or
    simulator input, those of its files. The frame goes through the Parquet loader, so values
    are checked and bad rows rejected (source ``dataframe:row k``) as for a file."""
    columns = ["time", "entity", "type", *list(saved.counted.vocab)[2:]]
    if set(columns) <= set(frame.columns):
        labels = {c.removeprefix("label_"): c for c in frame.columns if str(c).startswith("label_")}
        cfg: dict[str, Any] = {"format": "parquet", "attributes": columns[3:], "labels": labels}
    else:
        cfg = saved.input_config()
        if cfg["format"] not in ("csv", "parquet"):
            missing = ", ".join(c for c in columns if c not in frame.columns)
            raise DataError(f"the alerts frame lacks the column(s) {missing}; give time, entity, type and the "
                            f"model's attributes ({', '.join(columns[3:])})")
        cfg = {**cfg, "format": "parquet", "labels": _present_labels(cfg.get("labels"), frame)}
        cfg.pop("delimiter", None)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dataframe"
        _parquet_ready(frame).to_parquet(path, index=False)
        return load_alerts(cfg, path)


def log_pyfunc(model_dir: Path) -> str:
    """Log the saved model folder as the active run's pyfunc model ``model``; returns its URI."""
    dependencies = [r for r in requires("car") or [] if "extra ==" not in r]
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar would garble train.log
    # The input columns follow the model's input format: there is no signature to give, and
    # MLflow would warn that it cannot infer one on every run.
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    pyfunc_log.setLevel(logging.ERROR)
    try:
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(MODEL_CODE), artifacts={ARTIFACT: str(model_dir)},
            code_paths=[str(PACKAGE)], pip_requirements=dependencies,
        )
    finally:
        pyfunc_log.setLevel(level)
    return info.model_uri


def _present_labels(labels: dict[str, Any] | None, frame: pd.DataFrame) -> dict[str, Any]:
    """The ``labels`` entries whose column the frame has (new alerts usually have none)."""
    return {kind: spec for kind, spec in (labels or {}).items()
            if (spec if isinstance(spec, str) else spec.get("column")) in frame.columns}


def _parquet_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with text column names, mixed object columns as text, and float columns of whole
    numbers as integers (pandas reads a port column with a gap as 443.0; the model saw 443)."""
    out = frame.reset_index(drop=True)
    out.columns = [str(c) for c in out.columns]
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].astype("string")
        elif is_float_dtype(out[col]) and (out[col].dropna() % 1 == 0).all():
            out[col] = out[col].astype("Int64")
    return out
