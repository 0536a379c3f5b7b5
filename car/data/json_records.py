"""JSON alerts, shared by the CPTC, Wazuh and Suricata loaders.

Fields are dotted paths (``rule.id``, ``alert.signature``) that match nested objects or
keys flattened by an exporter (Splunk's ``"alert.signature"``). Values become text: lists
are joined with ``|``, objects are compact JSON, a missing field is empty.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from car.alerts import AlertTable, DataError
from car.data.files import decode, read_bytes
from car.data.schema import Field, Parsed, build, field_name, field_sources
from car.progress import ANNOUNCE_BYTES, Progress

log = logging.getLogger(__name__)


def field_value(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` (flattened key or nested objects), or None."""
    if path in record:
        return record[path]
    dot = path.find(".")
    while dot != -1:
        inner = record.get(path[:dot])
        if isinstance(inner, Mapping):
            value = field_value(inner, path[dot + 1 :])
            if value is not None:
                return value
        dot = path.find(".", dot + 1)
    return None


def field_text(value: Any) -> str:
    """A JSON value as text: '' for None, 'true'/'false', lists joined with '|'."""
    if value is None:
        return ""
    if isinstance(value, str):
        return writable(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "|".join(field_text(v) for v in _flat(value))
    if isinstance(value, Mapping):
        return compact(value)
    return str(value)


def _flat(values: list | tuple) -> list[Any]:
    """The non-list items of nested lists in order, without recursion (input may nest deeply)."""
    out, stack = [], [iter(values)]
    while stack:
        item = next(stack[-1], _flat)
        if item is _flat:
            stack.pop()
        elif isinstance(item, list | tuple):
            stack.append(iter(item))
        else:
            out.append(item)
    return out


def compact(value: Any) -> str:
    """Compact JSON text of a value."""
    return writable(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str))


def writable(text: str) -> str:
    """``text`` with each lone UTF-16 surrogate (a JSON escape such as \\ud800 that pairs with
    nothing) as U+FFFD: UTF-8 cannot hold one, so no output file could."""
    if text.isascii():
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@dataclass
class JsonRecords:
    """The usable records of one file (JSON objects) and their accounting."""

    items: list[Mapping[str, Any]]
    parsed: Parsed

    def drop(self, reason_of: Callable[[Mapping[str, Any]], str | None]) -> None:
        """Reject the records for which ``reason_of`` gives a reason."""
        kept = Parsed(self.parsed.source, rejected=self.parsed.rejected)
        items = []
        for item, alert_id, place in zip(self.items, self.parsed.ids, self.parsed.places):
            reason = reason_of(item)
            if reason is None:
                kept.keep(alert_id, place)
                items.append(item)
            else:
                kept.reject(alert_id, place, reason, compact(item))
        self.items, self.parsed = items, kept

    def column(self, path: str) -> pd.Series:
        """Text of one field for every record."""
        return pd.Series([field_text(field_value(r, path)) for r in self.items], dtype=str)


def read_json_lines(path: str) -> JsonRecords:
    """One JSON object a line (gzip allowed); blank lines are skipped, broken ones rejected."""
    text = decode(read_bytes(path), Path(path).name)
    records = JsonRecords([], Parsed(str(path)))
    alert_id = 0
    lines = text.split("\n")
    with Progress(f"parsing {Path(path).name}", len(lines), "lines") as progress:
        for number, line in enumerate(lines, start=1):
            progress.update(number)
            if not line.strip():
                continue
            reason, item = _parse_line(line)
            if reason is None:
                records.parsed.keep(alert_id, number)
                records.items.append(item)
            else:
                records.parsed.reject(alert_id, number, reason, line.rstrip("\r"))
            alert_id += 1
    if alert_id == 0:
        raise DataError(f"{Path(path).name}: empty file; it needs one JSON object a line: check data.path")
    return records


def read_json_array(path: str) -> list[Any]:
    """A file holding one JSON array (gzip and a UTF-8 BOM allowed)."""
    name = Path(path).name
    text = decode(read_bytes(path), name)
    if not text.strip():
        raise DataError(f"{name}: empty file; it needs a JSON array of records: check data.path")
    try:
        with Progress(f"parsing {name}", len(text), "characters", announce=len(text) >= ANNOUNCE_BYTES) as progress:
            value = json.loads(text)
            progress.update(len(text), f"{len(value):,} records" if isinstance(value, list) else "")
    except json.JSONDecodeError as err:
        raise DataError(
            f"{name}:{err.lineno}: invalid JSON at column {err.colno} ({err.msg}); "
            "the file must hold one JSON array (use the line-per-record formats for JSON lines)"
        ) from None
    except (ValueError, RecursionError) as err:
        raise DataError(f"{name}: unreadable JSON ({_unreadable(err)}); check the file") from None
    if not isinstance(value, list) or not value:
        found = "an empty array" if value == [] else f"a JSON {json_kind(value)}"
        raise DataError(
            f"{name}: expected a non-empty JSON array of records, found {found}; check data.path and data.format "
            "(JSON lines are data=wazuh or data=suricata)"
        )
    return value


def records_table(
    records: JsonRecords, columns: Mapping[str, Field], attributes: Mapping[str, Field], time_unit: str
) -> AlertTable:
    """The AlertTable of JSON records (missing time, entity or type rejects a record)."""
    for name, spec in attributes.items():
        sources = field_sources(spec)
        if records.items and all(field_value(r, f) is None for r in records.items for f in sources):
            log.warning("%s: attribute %s (%s) is in no record; check data.attributes",
                        records.parsed.name, name, field_name(spec))
    return build(records.parsed, records.column, columns, attributes, time_unit=time_unit)


def _parse_line(line: str) -> tuple[str | None, Any]:
    """(None, object) or (reason, None) for one line."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as err:
        return f"invalid JSON ({err.msg} at column {err.colno})", None
    except (ValueError, RecursionError) as err:
        return f"unreadable JSON ({_unreadable(err)})", None
    if not isinstance(item, dict):
        return f"not a JSON object ({json_kind(item)})", None
    return None, item


def json_kind(value: Any) -> str:
    """The JSON name of a parsed value's kind (array, string, number, true, false, null, object)."""
    if isinstance(value, bool):
        return str(value).lower()
    kinds = {list: "array", str: "string", int: "number", float: "number", dict: "object", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _unreadable(err: ValueError | RecursionError) -> str:
    """Why valid JSON syntax could not be read: Python's integer digit limit or its recursion limit."""
    return "nested too deeply" if isinstance(err, RecursionError) else "a number with too many digits"
