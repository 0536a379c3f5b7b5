"""Alert loaders: ``load_alerts(cfg, path)`` reads any supported format into an AlertTable.

Each format has a loader ``load_<format>(path, **options)`` whose options are the other
keys of the data config (``format``, ``path`` and ``history`` excepted). A folder path
loads every matching file in it, sorted by name, as one table; gzip is read transparently.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from car.alerts import AlertTable, DataError, require_alerts
from car.data.files import input_files

# format -> ("module:function", file patterns of a folder; none = the path is passed as is)
FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    "csv": ("car.data.tabular:load_csv", ("*.csv", "*.csv.gz", "*.tsv", "*.tsv.gz")),
    "parquet": ("car.data.tabular:load_parquet", ("*.parquet", "*.pq")),
    "ait_ads": ("car.data.ait_ads:load_ait_ads", ("*.csv", "*.csv.gz")),
    "cptc": ("car.data.cptc:load_cptc", ("*.json", "*.json.gz")),
    "wazuh": ("car.data.wazuh:load_wazuh", ("*.json", "*.json.gz", "*.jsonl", "*.jsonl.gz")),
    "suricata": ("car.data.suricata:load_suricata", ("*.json", "*.json.gz", "*.jsonl", "*.jsonl.gz")),
    "enterprise_sim": ("car.data.simulate:load_enterprise_sim", ()),
}
NOT_OPTIONS = ("format", "path", "history")
# Options that must be mappings when set, and how to set them.
MAPPING_OPTIONS = {"columns": "data.columns.entity=host", "labels": "+data.labels.attack=<column>"}


def load_alerts(cfg: Mapping[str, Any], path: str | PathLike | None, option: str = "data.path") -> AlertTable:
    """Load ``path`` (a file or folder) as the data config ``cfg`` says (``cfg["format"]``).
    ``option``: what names the path for the user (``data.history``, ``--input``); errors say it."""
    try:
        return _load(cfg, path)
    except DataError as err:
        if option == "data.path":
            raise
        raise DataError(str(err).replace("data.path", option)) from None


def _load(cfg: Mapping[str, Any], path: str | PathLike | None) -> AlertTable:
    options = _plain(cfg)
    fmt = options.pop("format", None)
    for key in NOT_OPTIONS:
        options.pop(key, None)
    load = loader(fmt)
    check_options(fmt, load, options)
    _check_mappings(options)
    if path is not None and not isinstance(path, str | PathLike):
        raise DataError(f"data.path={path!r} must be a file or folder path; fix it with data.path=<path>")
    patterns = FORMATS[fmt][1]
    if not patterns:
        return require_alerts(load(None if path is None else str(path), **options))
    folder = _existing(path, fmt)
    tables = [load(str(f), **options) for f in input_files(folder, patterns)]
    return require_alerts(concat_tables(tables, str(path)) if folder.is_dir() else tables[0])


def loader(fmt: str) -> Callable[..., AlertTable]:
    """The loader function of a data format (imported on first use)."""
    if fmt not in FORMATS:
        raise DataError(f"data.format={fmt!r} is not known; valid formats: {', '.join(FORMATS)}")
    module, name = FORMATS[fmt][0].split(":")
    return getattr(importlib.import_module(module), name)


def check_options(fmt: str, load: Callable[..., AlertTable], options: Mapping[str, Any]) -> None:
    """Raise DataError for an option key the loader does not take."""
    params = list(inspect.signature(load).parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    valid = [p.name for p in params] + list(NOT_OPTIONS)
    for key in options:
        if key not in valid:
            raise DataError(f"data.{key} is not an option of data format {fmt}; valid: {', '.join(valid)}")


def _check_mappings(options: Mapping[str, Any]) -> None:
    for key, example in MAPPING_OPTIONS.items():
        value = options.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise DataError(f"data.{key}={value!r} must be a mapping (or null); set one entry with {example}")


def concat_tables(tables: list[AlertTable], source: str) -> AlertTable:
    """One table of several files' tables; alert_ids continue from file to file."""
    kinds = [None if t.labels is None else list(t.labels.columns) for t in tables]
    odd = next((t for t, k in zip(tables, kinds) if k != kinds[0]), None)
    if odd is not None:
        raise DataError(
            f"{odd.source}: its label columns ({kinds[tables.index(odd)]}) differ from "
            f"{tables[0].source}'s ({kinds[0]}); load such files separately"
        )
    offsets = [0]
    for t in tables[:-1]:
        offsets.append(offsets[-1] + t.n_input)
    alerts = [t.alerts.assign(alert_id=t.alerts["alert_id"] + k) for t, k in zip(tables, offsets)]
    rejected = [t.rejected.assign(alert_id=t.rejected["alert_id"] + k) for t, k in zip(tables, offsets)]
    return AlertTable(
        alerts=pd.concat(alerts, ignore_index=True),
        attributes=tables[0].attributes,
        labels=None if kinds[0] is None else pd.concat([t.labels for t in tables], ignore_index=True),
        rejected=pd.concat([r for r in rejected if len(r)] or rejected[:1], ignore_index=True),
        source=source,
    )


def _existing(path: str | PathLike | None, fmt: str) -> Path:
    if path is None or str(path) == "":
        raise DataError(f"data.path is not set; give the {fmt} file or folder with data.path=<path>")
    found = Path(path).expanduser()
    if not found.exists():
        raise DataError(
            f"data.path={path}: no such file or folder (looked at {found.resolve()}); "
            "fix it with data.path=<existing file or folder>"
        )
    return found


def _plain(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The data config as plain dicts and lists (an OmegaConf DictConfig is converted)."""
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
