"""A fitted CAR model saved as a folder, and online ranking of new alerts with it.

The folder (``model/`` in a training run's output folder) holds two files:

* ``car_model.json``, the manifest: format and version, the model's name and options, the
  loader config of its input (the ``data.*`` keys except ``path`` and ``history``), the
  content columns and their vocabularies (the values behind each column's codes) and the
  sizes of the module's tables.
* ``tensors.pt``, a flat dict of tensors written with ``torch.save`` and read only with
  ``torch.load(weights_only=True)``. ``module.*`` is the CARModule state: Pitman-Yor discounts
  and strengths, APE embeddings, pair weights and noise tables. ``counted.*`` holds every
  alert counted so far: the distinct code tuples, each alert's tuple, each alert's time.

Online ranking keeps the fitted parameters and grows the counts. New alerts are coded with
the stored vocabularies. A value the model never counted gets the next free code, the zero
"unknown" APE vector, and a line in the report. The new alerts join the stored sequences in
time order, and the context tree, type counts and distinct tuples are rebuilt from all alerts.
So the new alerts' counts add to the stored ones, and their contexts reach back into the
stored sequences. An alert the model already counted (same time, entity, type and
attributes; copies pair up in order) is ranked but not counted again. Overlapping exports can
therefore be ranked safely, and ranking the fitted alerts again reproduces the fit's ranking.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from car.alerts import AlertTable
from car.content.ape import unique_tuples
from car.data import load_alerts
from car.data.datamodule import AlertDataModule, encode_codes
from car.data.json_records import json_kind
from car.data.simulate import ATTRIBUTES as SIMULATOR_ATTRIBUTES
from car.errors import CARError, ConfigError, DataError, error_line
from car.models.base import AlertRanker, Ranking
from car.models.car import CAR
from car.models.car_module import CARModule
from car.outputs.files import write_bytes, write_json
from car.progress import quantity

log = logging.getLogger(__name__)

FORMAT, FORMAT_VERSION = "car-model", 1
MANIFEST, TENSORS = "car_model.json", "tensors.pt"
REFIT = "save it again by re-running train.py with model=car (or hpyp, ngram, ape)"
# Loader options in the loaders' messages (``data.columns.<field>``, ...): `car rank` sets them as ``--data <key>``.
LOADER_OPTION = re.compile(r"\+?\bdata\.(?!path\b|history\b)([A-Za-z_]\w*)")
# A model fitted on data=enterprise_sim reads new alerts from `car simulate` CSV files.
SIMULATOR_CSV = {"format": "csv", "columns": {"time": "time", "entity": "host", "type": "type"},
                 "attributes": SIMULATOR_ATTRIBUTES, "labels": {"attack": "label_attack"}}


@dataclass(frozen=True)
class CountedAlerts:
    """Every alert a model has counted, as codes.

    vocab: per content column (entity, type, attributes) the values behind its codes (code = position).
    tuples (u, m) int64 distinct code tuples; tuple_of (n,) int64 each alert's tuple; times (n,) seconds.
    """

    vocab: dict[str, pd.Index]
    tuples: np.ndarray
    tuple_of: np.ndarray
    times: np.ndarray

    @classmethod
    def of(cls, data: AlertDataModule) -> CountedAlerts:
        """The alerts (history and batch) of a datamodule."""
        return cls(data.encoded.vocab, data.tuples, data.tuple_of, data.encoded.alert_times)

    @property
    def codes(self) -> np.ndarray:
        """Each alert's codes, shape (n, m)."""
        return self.tuples[self.tuple_of]

    def value_counts(self, column: str) -> pd.Series:
        """Alerts counted per value of a content column (e.g. ``type``), indexed by the values."""
        codes = self.tuples[self.tuple_of, list(self.vocab).index(column)]
        return pd.Series(np.bincount(codes, minlength=len(self.vocab[column])), index=self.vocab[column], name=column)


@dataclass(frozen=True)
class UnseenValues:
    """The alerts of a batch holding values the model never counted.

    per_column: alerts with such a value in that column; new_values: those values, sorted.
    """

    alerts: int
    with_unseen: int
    per_column: dict[str, int]
    new_values: dict[str, list[str]]

    def summary(self, examples: int = 20) -> dict[str, Any]:
        """The report as JSON data (``unseen_values.json``), at most ``examples`` values per column."""
        return {
            "alerts": self.alerts,
            "alerts_with_unseen_values": self.with_unseen,
            "columns": {col: {"alerts": n, "new_values": len(self.new_values[col]),
                              "examples": self.new_values[col][:examples]} for col, n in self.per_column.items()},
        }

    def message(self) -> str:
        """One line for the log: how many alerts, and per column alerts and new values."""
        parts = [f"{col} {n} ({quantity(len(self.new_values[col]), 'new value')})" for col, n in self.per_column.items() if n]
        return (f"{self.with_unseen} of {self.alerts} alerts have values the model never counted "
                f"(alerts per column): {', '.join(parts) or 'none'}")


@dataclass(frozen=True)
class OnlineRanking:
    """The ranking of new alerts, the report of their unseen values, and the model grown by them."""

    ranking: Ranking
    unseen: UnseenValues
    model: SavedModel


@dataclass(frozen=True)
class SavedModel:
    """A fitted CAR-family model (``car``), the alerts it has counted and the loader config of its input."""

    car: CAR
    counted: CountedAlerts
    loader: dict[str, Any]

    @classmethod
    def from_fit(cls, model: CAR, data_cfg: Mapping[str, Any]) -> SavedModel:
        """The model just fitted on the input that ``data_cfg`` (the run's ``data`` config) read."""
        if model.module is None or model.data is None:
            raise RuntimeError("SavedModel.from_fit needs a fitted CAR")
        plain = OmegaConf.to_container(data_cfg, resolve=True) if isinstance(data_cfg, DictConfig) else dict(data_cfg)
        loader = {k: v for k, v in plain.items() if k not in ("path", "history")}
        return cls(model, CountedAlerts.of(model.data), loader)

    def input_config(self, overrides: Sequence[str] = ()) -> dict[str, Any]:
        """Loader config for new alerts: the fitted input's (the simulator's: its CSV), with
        ``key=value`` overrides, e.g. ``labels=null`` for files without the label columns."""
        base = SIMULATOR_CSV if self.loader.get("format") == "enterprise_sim" else self.loader
        paths = [o for o in overrides if o.split("=", 1)[0].strip() in ("path", "history")]
        if paths:
            raise ConfigError(f"--data {paths[0]}: car rank reads the alerts of --input and no history; "
                              "give the file or folder with --input")
        try:
            given = OmegaConf.from_dotlist(list(overrides))
            merged = OmegaConf.to_container(OmegaConf.merge(base, given), resolve=True)
        except (OmegaConfBaseException, ValueError) as err:
            raise ConfigError(f"--data {' '.join(overrides)}: {error_line(err)}; use key=value, e.g. --data labels=null") from None
        # A merge keeps the base's entries under an empty mapping; `labels={}` means none.
        merged |= {key: value for key, value in OmegaConf.to_container(given).items() if value in ({}, [])}
        attributes = merged.get("attributes")
        if isinstance(attributes, dict):  # the manifest's JSON sorts keys: back to the fitted order
            fitted = {name: attributes[name] for name in list(self.counted.vocab)[2:] if name in attributes}
            merged["attributes"] = fitted | attributes  # keys already in `fitted` keep their place
        return merged

    def read(self, path: str | Path, overrides: Sequence[str] = ()) -> AlertTable:
        """New alerts from a file or folder in the format of the fitted input. Errors name
        ``car rank``'s options (``--input`` for the path, ``--data <key>`` for loader options)
        and the format the model reads."""
        config = self.input_config(overrides)
        try:
            return load_alerts(config, path, option="--input")
        except DataError as err:
            message = LOADER_OPTION.sub(r"--data \1", str(err))
            fitted = f"the model reads {config.get('format')} input (data={self.loader.get('format')} of its training run)"
            raise DataError(f"{message}; {fitted}") from None

    def rank(self, alerts: AlertTable) -> OnlineRanking:
        """Rank ``alerts`` online (module doc). This model is unchanged; the result holds the grown one."""
        codes, vocab, unseen = code_alerts(self.counted.vocab, alerts)
        if unseen.with_unseen:
            log.info("%s", unseen.message())
        times = alerts.seconds()
        repeat = already_counted(self.counted, codes, times)
        new = np.flatnonzero(repeat < 0)
        batch_row = np.full(len(self.counted.times), -1)
        batch_row[repeat[repeat >= 0]] = np.flatnonzero(repeat >= 0)
        encoded = encode_codes(
            np.vstack([self.counted.codes, codes[new]]), np.concatenate([self.counted.times, times[new]]),
            np.concatenate([batch_row, new]), vocab, float(self.car.options["temporal"]["run_gap"]),
        )
        ranking, data = self.car.rank_encoded(encoded, alerts)
        return OnlineRanking(ranking, unseen, replace(self, counted=CountedAlerts.of(data)))

    def save(self, path: str | Path) -> Path:
        """Write the model into folder ``path`` (created if missing); returns ``path``.

        The tensors are written before the manifest, each file atomically; `load` checks that
        the two agree, so a write cut short is reported, never half read.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {f"module.{k}": v.detach().cpu() for k, v in self.car.module.state_dict().items()}
        for name in ("tuples", "tuple_of", "times"):
            tensors[f"counted.{name}"] = torch.from_numpy(np.ascontiguousarray(getattr(self.counted, name)))
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        write_bytes(buffer.getvalue(), path / TENSORS)
        write_json(self._manifest(), path / MANIFEST)
        return path

    def _manifest(self) -> dict[str, Any]:
        module = self.car.module.hparams
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "name": self.car.name, "options": self.car.options, "tuple_batch": self.car.tuple_batch,
            "module": {"n_symbols": int(module.n_symbols), "cardinalities": [int(c) for c in module.cardinalities]},
            "loader": self.loader,
            "columns": list(self.counted.vocab),  # write_json sorts keys: this keeps the column order
            "vocab": {col: values.tolist() for col, values in self.counted.vocab.items()},
            "alerts": len(self.counted.times), "tuples": len(self.counted.tuples),
        }

    @classmethod
    def load(cls, path: str | Path) -> SavedModel:
        """The model saved in folder ``path``; what is missing, damaged or of another version
        is a one-line DataError."""
        path = Path(path)
        manifest = _read_manifest(path)
        tensors = _read_tensors(path / TENSORS)
        try:
            # Models saved before these options existed: type rarity of every alert, nothing more.
            for key, old in (("burst_gap", None), ("value_surprise", False), ("context_window", None),
                             ("context_weight", 0.0), ("address_window", None), ("address_weight", 0.0),
                             ("surprise_bandwidth", None), ("rarity_bandwidth", None), ("normalise_similarity", False),
                             ("tuple_pull", 0.0), ("agreement", "two_sided")):
                manifest["options"]["ranking"].setdefault(key, old)
            manifest["options"]["patterns"].setdefault("diversity", "none")  # ranked by score alone
            car = CAR(**manifest["options"], tuple_batch=manifest["tuple_batch"], name=manifest["name"])
            car.module = CARModule(manifest["module"]["n_symbols"], manifest["module"]["cardinalities"],
                                   **manifest["options"])
            parameters = {k.removeprefix("module."): v for k, v in tensors.items() if k.startswith("module.")}
            if any(v.isnan().any() for v in parameters.values()):  # NaN only: -inf is a log-probability of 0
                raise ValueError("its parameters hold NaN")
            car.module.load_state_dict(parameters)
            car.module.eval()
            vocab = {col: pd.Index(manifest["vocab"][col]) for col in manifest["columns"]}
            counted = CountedAlerts(vocab, *(tensors[f"counted.{k}"].numpy() for k in ("tuples", "tuple_of", "times")))
            _check_counted(counted, manifest["alerts"], manifest["tuples"])
            if not isinstance(manifest["loader"], dict):
                raise ValueError(f"its loader is a JSON {json_kind(manifest['loader'])}, not an object")
            return cls(car, counted, manifest["loader"])
        except (CARError, KeyError, TypeError, ValueError, RuntimeError) as err:
            why = f"no key {err}" if isinstance(err, KeyError) else error_line(err)
            raise DataError(f"{path}: {MANIFEST} and {TENSORS} do not fit together ({why}); {REFIT}") from None


def save_fitted(model: AlertRanker, data_cfg: Mapping[str, Any], path: Path) -> Path | None:
    """Save a fitted CAR-family model into folder ``path`` for ``car rank`` and MLflow; other
    rankers have no counts to grow: a log line, and None."""
    if not isinstance(model, CAR):
        log.info("model %s is not saved: car rank needs model=car, hpyp, ngram or ape", model.name)
        return None
    return SavedModel.from_fit(model, data_cfg).save(path)


def code_alerts(vocab: Mapping[str, pd.Index], alerts: AlertTable) -> tuple[np.ndarray, dict[str, pd.Index], UnseenValues]:
    """Codes (n, m) of ``alerts`` in ``vocab``, grown by the values it lacks (appended in sorted
    order, so known codes keep their meaning), and the report of those values."""
    columns = ["entity", "type", *alerts.attributes]
    if columns != list(vocab):
        raise DataError(f"{alerts.source}: the alerts have the columns {', '.join(columns)}, the model was fitted "
                        f"on {', '.join(vocab)}; read them with the model's data.attributes")
    codes = np.empty((len(alerts), len(columns)), dtype=np.int64)
    grown, per_column, new_values = {}, {}, {}
    any_unseen = np.zeros(len(alerts), dtype=bool)
    for j, col in enumerate(columns):
        values = alerts.alerts[col]
        unseen = vocab[col].get_indexer(values) < 0
        new = pd.Index(np.unique(values[unseen].to_numpy(dtype=str)))
        grown[col] = vocab[col].append(new)
        codes[:, j] = grown[col].get_indexer(values)
        per_column[col], new_values[col] = int(unseen.sum()), new.tolist()
        any_unseen |= unseen
    return codes, grown, UnseenValues(len(alerts), int(any_unseen.sum()), per_column, new_values)


def already_counted(counted: CountedAlerts, codes: np.ndarray, times: np.ndarray) -> np.ndarray:
    """For each new alert (codes (n, m), times (n,) seconds) the index of a counted alert with
    the same codes and time, or -1; copies of one alert pair up in order. Shape (n,)."""
    _, _, ids = unique_tuples(np.vstack([counted.tuples, codes]))
    u = len(counted.tuples)
    old = pd.DataFrame({"tuple": ids[:u][counted.tuple_of], "time": counted.times, "at": np.arange(len(counted.times))})
    new = pd.DataFrame({"tuple": ids[u:], "time": times})
    for frame in (old, new):
        frame["copy"] = frame.groupby(["tuple", "time"]).cumcount()
    hit = new.merge(old, on=["tuple", "time", "copy"], how="left")["at"]
    return hit.fillna(-1).to_numpy(dtype=np.int64)


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST
    if not path.is_dir():
        what = "a file, not a folder" if path.exists() else "no such folder"
        raise DataError(f"{path}: {what}; a saved model is the model/ folder of a training run's output folder")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        inner = next((p for p in (path / "model", path / "artifacts" / "model") if (p / MANIFEST).is_file()), None)
        if inner is not None:  # the run folder, or the run's MLflow model as downloaded (mlflow_model.py)
            what = "a training run's output folder" if inner.parent == path else "a training run's MLflow model"
            raise DataError(f"{path}: {what}; give its saved model, --model {inner}") from None
        raise DataError(f"{path}: no {MANIFEST}, so not a saved CAR model; {REFIT}") from None
    except (OSError, ValueError, RecursionError) as err:  # RecursionError: arrays nested too deep
        raise DataError(f"{file}: not readable JSON ({error_line(err)}); {REFIT}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{file}: not a CAR model manifest (no \"format\": \"{FORMAT}\"); {REFIT}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{file}: model format version {manifest.get('format_version')!r}, this car reads version "
                        f"{FORMAT_VERSION}; rank with the car version that saved it, or {REFIT}")
    return manifest


def _read_tensors(file: Path) -> dict[str, torch.Tensor]:
    try:
        tensors = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # a missing, cut or foreign file: every way torch.load fails
        raise DataError(f"{file}: not a readable tensor file ({error_line(err)}); {REFIT}") from None
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise DataError(f"{file}: not a dict of tensors; {REFIT}")
    return tensors


def _check_counted(counted: CountedAlerts, alerts: int, distinct: int) -> None:
    """A ValueError when the counted alerts disagree with the manifest (vocabularies, sizes,
    types, code ranges, times)."""
    for col, values in counted.vocab.items():
        if not values.is_unique or not all(isinstance(v, str) for v in values):
            raise ValueError(f"the vocabulary of {col} holds a value twice or one that is no text")
    tuples, tuple_of, times = counted.tuples, counted.tuple_of, counted.times
    sizes = np.array([len(v) for v in counted.vocab.values()])
    if tuples.shape != (distinct, len(sizes)) or tuple_of.shape != (alerts,) or times.shape != (alerts,):
        raise ValueError(f"expected {alerts} alerts, {distinct} tuples of {len(sizes)} columns; found "
                         f"tuple_of {tuple(tuple_of.shape)}, tuples {tuple(tuples.shape)}, times {tuple(times.shape)}")
    for name, codes in (("tuples", tuples), ("tuple_of", tuple_of)):
        if not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(f"counted.{name} holds {codes.dtype}, not whole-number codes")
    if ((tuples < 0) | (tuples >= sizes)).any() or ((tuple_of < 0) | (tuple_of >= len(tuples))).any():
        raise ValueError("codes outside the vocabularies")
    if not np.isfinite(times).all():
        raise ValueError("counted.times holds times that are not finite")

