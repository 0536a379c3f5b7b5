"""Generic CSV and Parquet alerts: a column mapping onto the AlertTable.

Options (the ``data.*`` keys): ``columns`` ({time, entity, type}: input column names),
``attributes`` (list of categorical columns, or ``{name: column}``), ``labels``
(``{kind: column}`` read as truthy/falsy values, or ``{kind: {column: c, negative: v}}``
where every value but ``v`` and empty is positive), ``time_unit`` (auto, s, ms, iso) and,
for CSV, ``delimiter``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from car.alerts import AlertTable, DataError
from car.data.csv_rows import read_csv_rows
from car.data.files import read_bytes
from car.data.json_records import field_text
from car.data.schema import Field, Parsed, attribute_options, build, column_options, field_sources
from car.progress import ANNOUNCE_BYTES, Progress

TRUE_VALUES = ("1", "true", "yes", "attack", "malicious")
FALSE_VALUES = ("0", "false", "no", "benign", "-", "")
DEFAULT_COLUMNS = {"time": "time", "entity": "entity", "type": "type"}
DELIMITER_GUESSES = (";", "\t", "|", ",")

LabelSpec = str | Mapping[str, str | Sequence[str]]


def load_csv(
    path: str,
    *,
    columns: Mapping[str, Field] | None = None,
    attributes: Sequence[str] | Mapping[str, Field] | None = None,
    labels: Mapping[str, LabelSpec] | None = None,
    time_unit: str = "auto",
    delimiter: str = ",",
) -> AlertTable:
    """Alerts from a delimited text file (gzip allowed); every value is read as text."""
    cols, attrs = column_options(columns, DEFAULT_COLUMNS), attribute_options(attributes)
    rows = read_csv_rows(read_bytes(path), str(path), delimiter)
    require_columns(rows.frame, cols, attrs, labels, rows.parsed.name, delimiter, rows.repeated)
    label_frame = label_columns(rows.frame, labels, rows.parsed)
    return build(rows.parsed, rows.frame.__getitem__, cols, attrs, labels=label_frame, time_unit=time_unit)


def load_parquet(
    path: str,
    *,
    columns: Mapping[str, Field] | None = None,
    attributes: Sequence[str] | Mapping[str, Field] | None = None,
    labels: Mapping[str, LabelSpec] | None = None,
    time_unit: str = "auto",
) -> AlertTable:
    """Alerts from a Parquet file; a datetime time column is used as is (time_unit ignored)."""
    cols, attrs = column_options(columns, DEFAULT_COLUMNS), attribute_options(attributes)
    frame = _read_parquet(Path(path)).reset_index(drop=True)
    for column in frame.columns[frame.dtypes == object]:  # text columns are str; these hold lists, structs, bytes
        frame[column] = frame[column].map(_cell_text)
    parsed = Parsed(str(path), ids=list(range(len(frame))), places=[f"row {i}" for i in range(len(frame))])
    require_columns(frame, cols, attrs, labels, parsed.name)
    for column in field_sources(cols["time"]):
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = _iso(frame[column])
            time_unit = "iso"
    label_frame = label_columns(frame, labels, parsed)
    return build(parsed, frame.__getitem__, cols, attrs, labels=label_frame, time_unit=time_unit)


def require_columns(
    frame: pd.DataFrame,
    columns: Mapping[str, Field],
    attributes: Mapping[str, Field],
    labels: Mapping[str, LabelSpec] | None,
    name: str,
    delimiter: str | None = None,
    repeated: frozenset[str] = frozenset(),
) -> None:
    """Raise DataError naming the input columns the options need but the file lacks, one that
    its header holds more than once (``repeated``): which copy is meant cannot be told, or a
    label column that the model would read."""
    inputs = [f for spec in columns.values() for f in field_sources(spec)]
    inputs += [f for spec in attributes.values() for f in field_sources(spec)]
    label_sources = [_label_spec(k, s)[0] for k, s in (labels or {}).items()]
    needed = inputs + label_sources
    for column in sorted(set(inputs).intersection(label_sources)):
        raise DataError(f"{name}:1: column {column!r} holds labels and is also read by data.columns or "
                        "data.attributes, so the model would see the labels; remove it there")
    for column in sorted(repeated.intersection(needed)):
        raise DataError(f"{name}:1: column {column!r} appears more than once in the header, so which one is "
                        "meant is unclear; rename the copies in the file, or map another column with "
                        "data.columns, data.attributes or data.labels")
    missing = sorted({c for c in needed if c not in frame.columns})
    if not missing:
        return
    present = [str(c) for c in frame.columns]
    hint = "map them with data.columns.<field>=<column>, data.attributes or data.labels"
    guess = next((d for d in DELIMITER_GUESSES if d != delimiter and d in present[0]), None)
    if delimiter is not None and len(present) == 1 and guess:
        hint = f"the header is one column, so the delimiter looks wrong: set data.delimiter={guess!r}"
    excel = re.fullmatch(r"sep=(.)", present[0]) if len(present) == 1 else None
    if excel:  # Excel's "sep=;" line names the delimiter above the real header
        hint = (f"line 1 {present[0]!r} is the delimiter line Excel writes: delete it and set "
                f"data.delimiter={excel.group(1)!r}")
    raise DataError(
        f"{name}:1: missing column(s) {', '.join(missing)}; present: {', '.join(present[:20])}; {hint}"
    )


def label_columns(
    frame: pd.DataFrame, labels: Mapping[str, LabelSpec] | None, parsed: Parsed
) -> pd.DataFrame | None:
    """Binary ``label_<kind>`` columns (int8) from the ``labels`` option, or None."""
    if not labels:
        return None
    out = {}
    for kind, spec in labels.items():
        column, negative = _label_spec(kind, spec)
        out[f"label_{kind}"] = _binary(frame[column], negative, parsed, f"data.labels.{kind}")
    return pd.DataFrame(out, index=frame.index)


def _label_spec(kind: str, spec: LabelSpec) -> tuple[str, list[str] | None]:
    """(column, negative values or None) of one ``labels`` entry."""
    if isinstance(spec, str):
        return spec, None
    valid = isinstance(spec, Mapping) and set(spec) <= {"column", "negative"}
    if valid and isinstance(spec.get("column"), str):
        negative = spec.get("negative")
        if negative is None:
            return spec["column"], None
        return spec["column"], [negative] if isinstance(negative, str) else list(negative)
    raise DataError(
        f"data.labels.{kind}={spec!r} must be a column name or {{column: <name>, negative: <benign value>}}"
    )


def _binary(values: pd.Series, negative: list[str] | None, parsed: Parsed, option: str) -> np.ndarray:
    """1 = attack. With ``negative``: every value except those and empty; else truthy/falsy words."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return (values.fillna(0) != 0).to_numpy(np.int8)
    codes, uniques = pd.factorize(values.astype("string").fillna(""))
    words = [str(u).strip().lower() for u in uniques]
    if negative is not None:
        benign = {str(v).strip().lower() for v in negative} | {""}
        return np.array([w not in benign for w in words], dtype=np.int8)[codes]
    known = np.array([w in TRUE_VALUES or w in FALSE_VALUES for w in words], dtype=bool)
    if not known.all():
        i = int(np.flatnonzero(~known[codes])[0])
        raise DataError(
            f"{parsed.name}:{parsed.places[i]}: label {values.iloc[i]!r} in column '{values.name}' is "
            f"neither positive ({', '.join(TRUE_VALUES)}) nor negative ({', '.join(FALSE_VALUES[:-1])}, "
            "empty); "
            f"set {option}={{column: {values.name}, negative: <benign value>}}"
        )
    return np.array([w in TRUE_VALUES for w in words], dtype=np.int8)[codes]


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{path}: no such file; fix it with data.path=<existing file or folder>")
    size = path.stat().st_size
    try:
        with Progress(f"reading {path.name}", size, "bytes", announce=size >= ANNOUNCE_BYTES) as progress:
            frame = pd.read_parquet(path)
            progress.update(size, f"{len(frame):,} rows")
    except (OSError, ValueError) as err:
        raise DataError(f"{path.name}: not a readable Parquet file ({err}); check the file") from None
    if len(frame) == 0:
        raise DataError(f"{path.name}: no rows; check the file")
    return frame


def _cell_text(value: Any) -> Any:
    """A Parquet list, struct or binary value as text, as the JSON formats write it (lists joined
    with ``|``, structs as compact JSON, bytes as UTF-8); other values as they are."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return field_text(value) if isinstance(value, list | dict) else value


def _iso(values: pd.Series) -> pd.Series:
    """Datetimes as ISO 8601 text in UTC (naive ones are taken as UTC)."""
    if values.dt.tz is None:
        values = values.dt.tz_localize("UTC")
    return values.dt.strftime("%Y-%m-%dT%H:%M:%S.%f%z").fillna("")
