"""How input fields map onto the AlertTable: the ``columns``/``attributes`` options and the
last step every loader shares (``build``).

A field is one input column (or JSON path), or a list of them tried in order: the first
non-empty value wins (e.g. ``time: [timestamp, _time]``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from car.alerts import REJECTED_COLUMNS, AlertTable, DataError, build_alert_table

CORE_FIELDS = ("time", "entity", "type")
RESERVED = ("alert_id", "time", "entity", "type", "source")

Field = str | list[str]


def column_options(columns: Mapping[str, Field] | None, defaults: Mapping[str, Field]) -> dict[str, Field]:
    """``defaults`` updated with the ``data.columns`` option (keys time, entity, type)."""
    given = dict(columns or {})
    for key, value in given.items():
        if key not in CORE_FIELDS:
            raise DataError(f"data.columns.{key} is not known; valid keys: {', '.join(CORE_FIELDS)}")
        if not _is_field(value):
            raise DataError(f"data.columns.{key}={value!r} must be a column name (or a list of them)")
    return {**defaults, **given}


def attribute_options(
    attributes: Sequence[str] | Mapping[str, Field] | None, defaults: Mapping[str, Field] | None = None
) -> dict[str, Field]:
    """The ``data.attributes`` option as ``{attribute name: input field}``; ``defaults`` when unset.

    A list names input fields that keep their names; a mapping renames them.
    """
    if attributes is None:
        attributes = defaults or {}
    if not isinstance(attributes, Mapping | list | tuple):  # a str, a number, a bool
        raise DataError(f"data.attributes={attributes!r} must be a list of columns or a mapping name: column")
    pairs = attributes.items() if isinstance(attributes, Mapping) else ((a, a) for a in attributes)
    out = {str(name): source for name, source in pairs}
    for name, source in out.items():
        if name in RESERVED:
            raise DataError(
                f"data.attributes: '{name}' is a reserved column name ({', '.join(RESERVED)}); "
                f"rename it, e.g. data.attributes={{{name}_attr: {source}}}"
            )
        if not _is_field(source):
            raise DataError(f"data.attributes.{name}={source!r} must be a column name (or a list of them)")
    return out


def field_name(spec: Field) -> str:
    """Display name of a field, e.g. ``timestamp or _time``."""
    return spec if isinstance(spec, str) else " or ".join(spec)


def field_sources(spec: Field) -> list[str]:
    """The input fields a field is read from, in order."""
    return [spec] if isinstance(spec, str) else list(spec)


@dataclass
class Parsed:
    """Where the records of one input file that could be split into fields came from.

    ``ids`` and ``places`` (line number, or e.g. ``"record 17"``) describe the usable
    records in order; ``rejected`` holds the others as REJECTED_COLUMNS tuples.
    """

    source: str
    ids: list[int] = field(default_factory=list)
    places: list[int | str] = field(default_factory=list)
    rejected: list[tuple[int, str, str, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The file name used in messages."""
        return Path(self.source).name

    @property
    def n_input(self) -> int:
        """Input records read: usable plus rejected."""
        return len(self.ids) + len(self.rejected)

    def keep(self, alert_id: int, place: int | str) -> None:
        """Record a usable input record."""
        self.ids.append(alert_id)
        self.places.append(place)

    def reject(self, alert_id: int, place: int | str, reason: str, raw: str) -> None:
        """Record an input record that cannot be split into fields."""
        self.rejected.append((alert_id, f"{self.name}:{place}", reason, raw[:500]))


def build(
    parsed: Parsed,
    get: Callable[[str], pd.Series],
    columns: Mapping[str, Field],
    attributes: Mapping[str, Field],
    *,
    labels: pd.DataFrame | None = None,
    time_unit: str = "auto",
) -> AlertTable:
    """The AlertTable of the usable records; ``get(field)`` returns that field's values."""
    raw = {"alert_id": np.asarray(parsed.ids, dtype=np.int64)}
    read: dict[str, str] = {}
    for key in CORE_FIELDS:
        name = field_name(columns[key])
        raw[name] = _coalesce([get(f) for f in field_sources(columns[key])])
        read[name] = name
    for name, source in attributes.items():
        if read.get(name, field_name(source)) != field_name(source):
            raise DataError(
                f"data.attributes.{name}={field_name(source)} clashes with the column {name} used as "
                "time, entity or type; give the attribute another name"
            )
        raw[name] = _coalesce([get(f) for f in field_sources(source)])
        read[name] = field_name(source)
    rejected = pd.DataFrame(parsed.rejected, columns=REJECTED_COLUMNS).astype({"alert_id": "int64"})
    return build_alert_table(
        pd.DataFrame(raw),
        source=parsed.source,
        time=field_name(columns["time"]),
        entity=field_name(columns["entity"]),
        type=field_name(columns["type"]),
        attributes=list(attributes),
        labels=labels,
        lines=np.asarray(parsed.places, dtype=object),
        time_unit=time_unit,
        rejected=rejected,
        n_input=parsed.n_input,
    )


def _coalesce(values: list[pd.Series]) -> pd.Series:
    """The first non-empty value of each row (one series is returned unchanged)."""
    if len(values) == 1:
        return values[0]
    out = values[0].astype("string").fillna("").str.strip()
    for more in values[1:]:
        out = out.where(out != "", more.astype("string").fillna("").str.strip())
    return out.astype(str)


def _is_field(value: object) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, Sequence) and bool(value) and all(isinstance(v, str) and v for v in value)
