"""AIT Alert Data Set (AIT-ADS) CSV: ``time,name,ip,host,short,time_label,event_label``.

Entity = ``host``, type = ``short``; attributes ``ip``, ``name`` and ``detector`` (the
prefix of ``short`` before the first ``-``: W Wazuh, S Suricata, A AMiner). When the label
columns are present: ``label_strict`` = ``event_label != '-'``, ``label_window`` =
``time_label != 'false_positive'``, plus both columns as annotations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from car.alerts import AlertTable
from car.data.csv_rows import read_csv_rows
from car.data.files import read_bytes
from car.data.schema import Field, attribute_options, build, column_options
from car.data.tabular import label_columns, require_columns

DEFAULT_COLUMNS = {"time": "time", "entity": "host", "type": "short"}
DEFAULT_ATTRIBUTES = ("ip", "name", "detector")
LABELS = {
    "strict": {"column": "event_label", "negative": "-"},
    "window": {"column": "time_label", "negative": "false_positive"},
}


def load_ait_ads(
    path: str,
    *,
    columns: Mapping[str, Field] | None = None,
    attributes: Sequence[str] | Mapping[str, Field] = DEFAULT_ATTRIBUTES,
    time_unit: str = "s",
) -> AlertTable:
    """Alerts of one AIT-ADS scenario CSV (gzip allowed); labels only if the file has them."""
    cols, attrs = column_options(columns, DEFAULT_COLUMNS), attribute_options(attributes)
    rows = read_csv_rows(read_bytes(path), str(path))
    frame = rows.frame
    if "short" in frame and "detector" not in frame:
        codes, shorts = pd.factorize(frame["short"])
        frame["detector"] = pd.Series(shorts.str.split("-", n=1).str[0].take(codes), dtype=str)
    labels = {kind: spec for kind, spec in LABELS.items() if spec["column"] in frame}
    require_columns(frame, cols, attrs, labels, rows.parsed.name, ",", rows.repeated)
    label_frame = label_columns(frame, labels, rows.parsed)
    if label_frame is not None:
        label_frame = pd.concat([label_frame, frame[[s["column"] for s in labels.values()]]], axis=1)
    return build(rows.parsed, frame.__getitem__, cols, attrs, labels=label_frame, time_unit=time_unit)
