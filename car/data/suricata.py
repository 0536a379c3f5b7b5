"""Suricata EVE JSON lines: only ``event_type == "alert"`` records are alerts.

Other events are rejected ("not an alert event (event_type=flow)") so that every line is
accounted for. Entity = ``dest_ip`` (the attacked host), type = ``alert.signature``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from car.alerts import AlertTable
from car.data.json_records import field_text, read_json_lines, records_table
from car.data.schema import Field, attribute_options, column_options

DEFAULT_COLUMNS = {"time": "timestamp", "entity": "dest_ip", "type": "alert.signature"}
DEFAULT_ATTRIBUTES = {
    "src_ip": "src_ip",
    "src_port": "src_port",
    "dest_port": "dest_port",
    "proto": "proto",
    "category": "alert.category",
    "severity": "alert.severity",
    "signature_id": "alert.signature_id",
    "sensor": "host",
}


def load_suricata(
    path: str,
    *,
    columns: Mapping[str, Field] | None = None,
    attributes: Sequence[str] | Mapping[str, Field] | None = None,
    time_unit: str = "auto",
) -> AlertTable:
    """Alert events of an EVE JSON-lines file (gzip allowed)."""
    cols, attrs = column_options(columns, DEFAULT_COLUMNS), attribute_options(attributes, DEFAULT_ATTRIBUTES)
    records = read_json_lines(path)
    records.drop(_not_alert)
    return records_table(records, cols, attrs, time_unit)


def _not_alert(event: Mapping[str, Any]) -> str | None:
    kind = field_text(event.get("event_type"))
    return None if kind == "alert" else f"not an alert event (event_type={kind or 'missing'})"
