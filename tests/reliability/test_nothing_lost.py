"""Nothing lost: on random CSV and JSON-lines input every input row is ranked or rejected exactly
once (alert_ids partition range(n_rows)), at the place (line) it was read from."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from car.alerts import DataError
from car.data import load_alerts
from car.models.baselines import Rarity
from car.outputs.ranked import ranked_alerts

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

GOOD_TIMES = st.one_of(
    st.integers(631_152_000, 4_102_444_799).map(str),  # seconds, 1990..2099
    st.integers(631_152_000_000, 4_102_444_799_999).map(str),  # milliseconds
    st.sampled_from(["2024-03-04T10:00:00Z", "2024-03-04 10:00:00.123456+02:00", "1700000000.25"]),
)
BAD_TIMES = st.sampled_from(
    ["", "never", "0", "-5", "1e300", "nan", "inf", "99999999999999999999", "2024-02-30", "5000000000", "12:00"]
)
# Any text, quotes, commas, newlines and formula starts included (csv.writer quotes as needed).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
NAME = TEXT.filter(lambda s: s.strip() != "")
KINDS = ("good", "bad_time", "no_entity", "no_type", "no_attribute", "short", "long")


@st.composite
def rows(draw) -> tuple[str, list[str]]:
    """One input row: (kind, fields); fields are time, entity, type, note (4 when well-formed)."""
    kind = draw(st.sampled_from(KINDS))
    time = draw(BAD_TIMES if kind == "bad_time" else GOOD_TIMES)
    entity = "" if kind == "no_entity" else draw(NAME)
    type_ = draw(st.sampled_from(["", " "])) if kind == "no_type" else draw(NAME)
    note = "" if kind == "no_attribute" else draw(TEXT)
    fields = [time, entity, type_, note]
    if kind == "short":
        fields = fields[: draw(st.integers(2, 3))]
    elif kind == "long":
        fields += draw(st.lists(TEXT, min_size=1, max_size=3))
    return kind, fields


def render(row: list[str], delimiter: str, terminator: str, quote_all: bool = False) -> str:
    """One CSV record. csv.writer leaves a CR unquoted when lines end in LF alone, but a bare CR
    ends a record, so such rows are written with every field quoted."""
    out = io.StringIO()
    quote_all |= terminator == "\n" and any("\r" in f for f in row)
    quoting = csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    csv.writer(out, delimiter=delimiter, lineterminator=terminator, quoting=quoting).writerow(row)
    return out.getvalue()


@SETTINGS
@given(
    data=st.lists(rows(), min_size=1, max_size=25),
    delimiter=st.sampled_from([",", ";", "\t"]),
    terminator=st.sampled_from(["\n", "\r\n"]),
    quote_all=st.lists(st.booleans(), min_size=25, max_size=25),
)
def test_every_csv_row_is_ranked_or_rejected_exactly_once(tmp_path, data, delimiter, terminator, quote_all):
    kinds = [kind for kind, _ in data]
    lines, text = [], render(["time", "entity", "type", "note"], delimiter, terminator)
    for (_, fields), quoted in zip(data, quote_all):
        lines.append(text.count("\n") + 1)
        text += render(fields, delimiter, terminator, quoted)
    path = tmp_path / "random.csv"
    path.write_bytes(text.encode())
    usable = [i for i, k in enumerate(kinds) if k in ("good", "no_attribute")]
    try:
        table = load_alerts({"format": "csv", "delimiter": delimiter, "attributes": ["note"]}, path)
    except DataError as err:
        assert not usable and "no usable alerts" in str(err), str(err)
        return
    ids = np.concatenate([table.alerts["alert_id"], table.rejected["alert_id"]]).astype(np.int64)
    assert np.array_equal(np.sort(ids), np.arange(len(data)))
    assert table.alerts["alert_id"].tolist() == usable
    assert table.alerts["source"].tolist() == [f"random.csv:{lines[i]}" for i in usable]
    assert table.rejected["source"].tolist() == [f"random.csv:{lines[i]}" for i in table.rejected["alert_id"]]
    notes = [data[i][1][3].strip() or "(missing)" for i in usable]
    assert table.alerts["note"].tolist() == notes
    # Through a model and the output table: the same ids, each once.
    ranked = ranked_alerts(table, Rarity().fit(table).rank(table))
    assert sorted(ranked["alert_id"].tolist() + table.rejected["alert_id"].tolist()) == list(range(len(data)))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def json_lines(draw) -> tuple[bool, str]:
    """(usable, line) of a Wazuh-like JSON-lines file: good records, records missing or with odd
    nested fields, broken JSON and values that are not objects."""
    kind = draw(st.sampled_from(["good", "odd", "broken", "not_object"]))
    record = {"timestamp": draw(GOOD_TIMES), "agent": {"name": draw(NAME)}, "rule": {"id": draw(NAME)}}
    if kind == "odd":
        key = draw(st.sampled_from(["timestamp", "agent", "rule"]))
        record[key] = draw(JSON_VALUES)
        usable = None  # decided by the loader; only the accounting is checked
    elif kind == "broken":
        text = json.dumps(record)
        return False, text[: draw(st.integers(1, len(text) - 1))]
    elif kind == "not_object":
        return False, json.dumps(draw(st.lists(JSON_VALUES, max_size=2) | TEXT))
    else:
        usable = True
    return usable, json.dumps(record, ensure_ascii=draw(st.booleans()))


@SETTINGS
@given(data=st.lists(json_lines(), min_size=1, max_size=25))
def test_every_json_line_is_ranked_or_rejected_exactly_once(tmp_path, data):
    path = tmp_path / "random.json"
    path.write_text("\n".join(line for _, line in data), encoding="utf-8")
    try:
        table = load_alerts({"format": "wazuh"}, path)
    except DataError as err:
        assert not any(u for u, _ in data) and "no usable alerts" in str(err), str(err)
        return
    ids = np.concatenate([table.alerts["alert_id"], table.rejected["alert_id"]]).astype(np.int64)
    assert np.array_equal(np.sort(ids), np.arange(len(data)))
    kept = set(table.alerts["alert_id"])
    assert all(i in kept for i, (u, _) in enumerate(data) if u is True)
    assert not any(i in kept for i, (u, _) in enumerate(data) if u is False)
    assert table.alerts["source"].tolist() == [f"random.json:{i + 1}" for i in table.alerts["alert_id"]]


@pytest.mark.parametrize("n", [1, 2, 7])
def test_rejected_only_rows_never_reach_the_model(tmp_path, n):
    """Rows rejected at parse time and at validation keep their ids across folder loads."""
    for k in range(n):
        (tmp_path / f"part{k}.csv").write_text("time,entity,type\n1700000000,h,a\nnever,h,a\n1700000001,h\n")
    table = load_alerts({"format": "csv"}, tmp_path)
    ids = np.concatenate([table.alerts["alert_id"], table.rejected["alert_id"]])
    assert sorted(ids.tolist()) == list(range(3 * n))
    assert table.alerts["alert_id"].tolist() == [3 * k for k in range(n)]
