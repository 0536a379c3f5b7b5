"""The canonical alert table every loader produces and every model consumes.

One row per usable input alert, in input order:

* ``alert_id``  int64, 0-based position of the row among the input's data rows
* ``time``      datetime64[ns, UTC]
* ``entity``    str, the sequence key (default: the host)
* ``type``      str, the symbol of the temporal model
* attribute columns (str), named in ``AlertTable.attributes``
* ``source``    str, ``file:line`` of the raw record

Labels live in a separate frame (same row order) that models never receive: binary
columns ``label_<kind>`` (1 = attack) plus free annotations (campaign, step, ...).
Rows that cannot be used are kept in ``rejected`` with their ``alert_id``, source and
reason, so that ``len(alerts) + len(rejected)`` always equals the number of input rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from car.errors import DataError

__all__ = ["AlertTable", "DataError", "build_alert_table", "parse_times", "require_alerts"]

MISSING = "(missing)"
REJECTED_COLUMNS = ["alert_id", "source", "reason", "raw"]
# Times before 1990 or after 2100 are almost always a unit mistake (ms read as s, or s as ms).
TIME_MIN = pd.Timestamp("1990-01-01", tz="UTC")
TIME_MAX = pd.Timestamp("2100-01-01", tz="UTC")


@dataclass
class AlertTable:
    """Usable alerts, their labels (kept apart) and the rejected input rows."""

    alerts: pd.DataFrame
    attributes: list[str]
    labels: pd.DataFrame | None = None
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REJECTED_COLUMNS))
    source: str = ""

    def __len__(self) -> int:
        return len(self.alerts)

    @property
    def n_input(self) -> int:
        """Number of input rows: usable plus rejected."""
        return len(self.alerts) + len(self.rejected)

    @property
    def label_kinds(self) -> list[str]:
        """Kinds of binary labels present, e.g. ``["strict", "window"]``."""
        if self.labels is None:
            return []
        return [c.removeprefix("label_") for c in self.labels.columns if c.startswith("label_")]

    def label(self, kind: str) -> np.ndarray:
        """Binary labels of one kind, shape (n,), int8."""
        return self.labels[f"label_{kind}"].to_numpy(dtype=np.int8)

    def unlabeled(self) -> AlertTable:
        """The same alerts without labels: what a model is allowed to see."""
        return replace(self, labels=None)

    def seconds(self) -> np.ndarray:
        """Alert times as float64 seconds since the epoch, shape (n,)."""
        return self.alerts["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9


def parse_times(values: pd.Series, unit: str = "auto") -> pd.Series:
    """Parse times to UTC timestamps; unparsable or out-of-range values become NaT.

    ``unit``: ``"auto"`` (numbers above 1e11 are milliseconds, else seconds; text is ISO
    8601), ``"s"``, ``"ms"`` or ``"iso"``. Numbers are read to the microsecond.
    """
    if not isinstance(unit, str) or unit not in {"auto", "s", "ms", "iso"}:
        raise DataError(f"data.time_unit={unit!r} is not known; use auto, s, ms or iso")
    numeric = pd.to_numeric(values, errors="coerce") if unit != "iso" else None
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if numeric is not None:
        is_num = numeric.notna()
        if is_num.any():
            num = numeric[is_num].astype("float64")
            if unit == "auto":
                scale = np.where(num.abs() > 1e11, 1e3, 1e6)
            else:
                scale = 1e3 if unit == "ms" else 1e6
            # Whole microseconds: exact in float64 for these times, where nanoseconds are not
            # (1700000000001 ms was 20.000999936 s past the minute).
            us = (num * scale).round()
            ok = us.abs() < 9e15
            out[is_num[is_num].index[ok]] = pd.to_datetime(us[ok].astype("int64") * 1000, utc=True)
        text = values[~is_num]
    else:
        text = values
    if unit in {"auto", "iso"} and len(text):
        out[text.index] = _in_range(pd.to_datetime(text.astype(str), utc=True, errors="coerce", format="ISO8601"))
    return _in_range(out)


def _in_range(times: pd.Series) -> pd.Series:
    """``times`` as datetime64[ns, UTC], NaT outside 1990..2100: pandas parses ISO text at the
    resolution it needs, and a year such as 2500 or 1000 does not fit in nanoseconds."""
    return times.where((times >= TIME_MIN) & (times < TIME_MAX)).astype("datetime64[ns, UTC]")


def build_alert_table(
    raw: pd.DataFrame,
    *,
    source: str,
    time: str,
    entity: str,
    type: str,
    attributes: list[str],
    labels: pd.DataFrame | None = None,
    lines: np.ndarray | None = None,
    time_unit: str = "auto",
    rejected: pd.DataFrame | None = None,
    n_input: int | None = None,
) -> AlertTable:
    """Validate a raw frame (one row per input record) into an AlertTable.

    ``raw`` holds the input records in order; its positions are the ``alert_id``s unless
    ``raw`` has an ``alert_id`` column (loaders that already rejected unparsable records
    pass those in ``rejected`` and the ids of the remaining ones). ``lines`` gives each
    row's line number in ``source`` (default: row position + 2, after a header line).
    Rows with an unparsable time or an empty entity or type are rejected with a reason;
    missing attribute values become ``"(missing)"``. A table of no usable rows is returned
    (`require_alerts` refuses it).
    """
    name = source.rsplit("/", 1)[-1]
    missing = [c for c in {time, entity, type, *attributes} if c not in raw.columns]
    if missing:
        raise DataError(
            f"{name}: missing column(s) {', '.join(sorted(missing))}; present: "
            f"{', '.join(map(str, raw.columns[:20]))}. Map them with data.columns.<field>=<column>"
        )
    ids = raw["alert_id"].to_numpy(np.int64) if "alert_id" in raw else np.arange(len(raw), dtype=np.int64)
    lines = np.asarray(lines) if lines is not None else ids + 2
    where = pd.Series([f"{name}:{i}" for i in lines], index=raw.index, dtype=str)

    parsed = parse_times(raw[time], time_unit)
    ent = _text(raw[entity])
    typ = _text(raw[type])
    reasons = pd.Series("", index=raw.index, dtype=str)
    reasons[parsed.isna()] = f"unparsable or out-of-range time in column '{time}'"
    reasons[(reasons == "") & (ent == "")] = f"empty entity column '{entity}'"
    reasons[(reasons == "") & (typ == "")] = f"empty type column '{type}'"
    bad = (reasons != "").to_numpy()

    frame = pd.DataFrame(
        {"alert_id": ids, "time": parsed, "entity": ent, "type": typ}, index=raw.index
    )
    for col in attributes:
        frame[col] = _text(raw[col]).replace("", MISSING)
    frame["source"] = where
    keep = ~bad
    table = AlertTable(
        alerts=frame[keep].reset_index(drop=True),
        attributes=list(attributes),
        labels=labels[keep].reset_index(drop=True) if labels is not None else None,
        rejected=_rejected_rows(raw[bad], ids[bad], where[bad], reasons[bad], rejected),
        source=source,
    )
    if n_input is not None and table.n_input != n_input:
        raise AssertionError(f"{name}: {table.n_input} rows accounted for, {n_input} read")
    return table


def require_alerts(table: AlertTable) -> AlertTable:
    """``table``, or a DataError if none of its rows is usable: the first rejection and its fix.
    Checked on a whole input, so that a file of a folder whose rows are all rejected only adds them."""
    if len(table) == 0:
        first = table.rejected["reason"].iloc[0] if len(table.rejected) else "file has no rows"
        raise DataError(
            f"{Path(table.source).name}: no usable alerts ({len(table.rejected)} rejected, first reason: {first}); "
            f"{_fix(first)}"
        )
    return table


def _rejected_rows(raw: pd.DataFrame, ids: np.ndarray, where: pd.Series, reasons: pd.Series,
                   earlier: pd.DataFrame | None) -> pd.DataFrame:
    """The rows ``raw`` rejected by `build_alert_table` (their ids, ``file:line`` and reasons), with
    the rows the loader rejected ``earlier``, in ``alert_id`` order; columns ``REJECTED_COLUMNS``,
    ``raw`` the row's fields comma-joined, at most 500 characters."""
    new = pd.DataFrame(
        {
            "alert_id": ids,
            "source": where.to_numpy(),
            "reason": reasons.to_numpy(),
            # pandas 3 keeps a missing value missing under astype(str): write it as an empty field.
            "raw": raw.drop(columns="alert_id", errors="ignore").astype(str).fillna("").agg(",".join, axis=1)
            .str.slice(0, 500).to_numpy()
            if len(raw)
            else [],
        }
    )
    every = pd.concat([r for r in (earlier, new) if r is not None and len(r)] or [new])
    return every.sort_values("alert_id", kind="stable").reset_index(drop=True)[REJECTED_COLUMNS]


def _fix(reason: str) -> str:
    """The fix to suggest when every row was rejected, for the first rejection reason."""
    if "time in column" in reason:
        return (
            "check data.columns.time and data.time_unit (auto, s, ms or iso; epoch times must fall "
            f"in {TIME_MIN.year}..{TIME_MAX.year})"
        )
    if reason.startswith(("invalid JSON", "not a JSON object")):
        return "the file must hold one JSON object a line: a JSON array becomes that with jq -c '.[]'; check data.format"
    if reason.startswith("not an alert event"):
        return "the file has no alert events (event_type alert), only other Suricata events; check data.path"
    return "check the file and data.columns"


def _text(col: pd.Series) -> pd.Series:
    """Column as stripped text with missing values as ''.

    Alert columns repeat few distinct values, so each distinct value is stripped once.
    """
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    clean = pd.Index(uniques).astype("string").fillna("").str.strip().astype(str)
    values = np.append(clean.to_numpy(dtype=object), "")
    return pd.Series(values[codes], index=col.index, dtype=str)
