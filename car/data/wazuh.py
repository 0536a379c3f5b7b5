"""Wazuh alerts (``alerts.json``): one JSON object a line.

Entity = ``agent.name``, type = ``rule.id``; attributes rule level, description and groups
(joined with ``|``), decoder, source and destination address (``data.srcip``, else the
EVE ``data.src_ip``; likewise dstip) and log location.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from car.alerts import AlertTable
from car.data.json_records import read_json_lines, records_table
from car.data.schema import Field, attribute_options, column_options

DEFAULT_COLUMNS = {"time": "timestamp", "entity": "agent.name", "type": "rule.id"}
DEFAULT_ATTRIBUTES = {
    "level": "rule.level",
    "description": "rule.description",
    "groups": "rule.groups",
    "decoder": "decoder.name",
    "srcip": ["data.srcip", "data.src_ip"],
    "dstip": ["data.dstip", "data.dest_ip"],
    "location": "location",
}


def load_wazuh(
    path: str,
    *,
    columns: Mapping[str, Field] | None = None,
    attributes: Sequence[str] | Mapping[str, Field] | None = None,
    time_unit: str = "auto",
) -> AlertTable:
    """Alerts of a Wazuh JSON-lines file (gzip allowed); broken lines are rejected."""
    cols, attrs = column_options(columns, DEFAULT_COLUMNS), attribute_options(attributes, DEFAULT_ATTRIBUTES)
    return records_table(read_json_lines(path), cols, attrs, time_unit)
