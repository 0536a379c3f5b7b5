"""CPTC-2017 Suricata alerts: a Splunk-exported JSON array per team (``NationalTeam<k>.json.gz``).

Each record's ``result`` holds the EVE fields flattened (``alert.signature``, ...) and the
original EVE line in ``_raw``, read when a time, entity or type field is not flattened.
Entity = ``dest_ip`` (the attacked host), type = ``alert.signature``; time =
``timestamp``, else Splunk's ``_time``. No labels: nearly every alert involves an
attacker address. Rejected records are placed as ``record <k>`` (0-based array index).
"""

from __future__ import annotations

import json
from collections import ChainMap
from collections.abc import Mapping, Sequence
from typing import Any

from car.alerts import AlertTable
from car.data.json_records import JsonRecords, compact, field_value, read_json_array, records_table
from car.data.schema import Field, Parsed, attribute_options, column_options, field_sources
from car.data.suricata import DEFAULT_ATTRIBUTES

DEFAULT_COLUMNS = {"time": ["timestamp", "_time"], "entity": "dest_ip", "type": "alert.signature"}


def load_cptc(
    path: str,
    *,
    columns: Mapping[str, Field] | None = None,
    attributes: Sequence[str] | Mapping[str, Field] | None = None,
    time_unit: str = "auto",
) -> AlertTable:
    """Alerts of one CPTC team file (gzip and a UTF-8 BOM allowed)."""
    cols, attrs = column_options(columns, DEFAULT_COLUMNS), attribute_options(attributes, DEFAULT_ATTRIBUTES)
    core = [field_sources(spec) for spec in cols.values()]
    records = JsonRecords([], Parsed(str(path)))
    for index, record in enumerate(read_json_array(path)):
        result = record.get("result") if isinstance(record, dict) else None
        if isinstance(result, dict):
            records.parsed.keep(index, f"record {index}")
            records.items.append(_with_raw(result, core))
        else:
            records.parsed.reject(index, f"record {index}", "record has no 'result' object", compact(record))
    return records_table(records, cols, attrs, time_unit)


def _with_raw(result: dict[str, Any], core: list[list[str]]) -> Mapping[str, Any]:
    """``result``, backed by its parsed ``_raw`` EVE line when a time, entity or type is missing."""
    raw = result.get("_raw")
    found = all(any(field_value(result, f) not in (None, "") for f in fields) for fields in core)
    if found or not isinstance(raw, str):
        return result
    try:
        eve = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, an over-long number or too deep: no EVE fields
        return result
    if not isinstance(eve, dict):
        return result
    # A field present but null or empty must not hide the EVE line's value.
    return ChainMap({key: value for key, value in result.items() if value is not None and value != ""}, eve)
