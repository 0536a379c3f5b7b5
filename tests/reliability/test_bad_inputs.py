"""Bad input at the loader level (``car.data.load_alerts``): every case is either a clear
one-line DataError (file, line or column, and the fix) or rejected rows with a reason while
the other rows load. The files are built in tmp_path; corpus/ holds two realistic messy files.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import warnings
import zipfile

import pandas as pd
import pytest

from car.alerts import DataError
from car.data import load_alerts
from reliability_helpers import CORPUS, assert_accounted, assert_one_line_error, write

CSV = {"format": "csv"}
HEADER = "time,entity,type\n"
GOOD = "1700000000,h1,login\n"
WAZUH_OK = {"timestamp": "2024-03-04T10:00:00Z", "agent": {"name": "web-1"}, "rule": {"id": "5710", "level": 5}}


def wazuh_line(**changes) -> str:
    """A Wazuh alert as one JSON line, with top-level keys replaced (None deletes a key)."""
    record = {**WAZUH_OK, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not None})


def load_error(tmp_path, name: str, data: str | bytes, cfg: dict) -> str:
    """The message of the DataError loading ``data`` as file ``name`` raises."""
    path = write(tmp_path / name, data)
    with pytest.raises(DataError) as err:
        load_alerts(cfg, path)
    return str(err.value)


# --- clear one-line errors --------------------------------------------------------------------

_LINES = ("time,entity,type\n" + "".join(f"{1700000000 + i},h{i % 7},t{i % 13}\n" for i in range(3000))).encode()
_GZ = gzip.compress(_LINES)
_CUT = _GZ[: len(_GZ) // 2]
_ZIP_BUFFER = io.BytesIO()
with zipfile.ZipFile(_ZIP_BUFFER, "w") as _archive:
    _archive.writestr("alerts.csv", _LINES)
_ZIP = _ZIP_BUFFER.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "cfg", "needles"),
    [
        # truncated or corrupt gzip, in every format that reads files
        ("cut.csv.gz", _CUT, CSV, ["cut.csv.gz: truncated or corrupt gzip", "compress the file again"]),
        ("cut.json.gz", _CUT, {"format": "wazuh"}, ["cut.json.gz: truncated or corrupt gzip"]),
        ("cut.jsonl.gz", _CUT, {"format": "suricata"}, ["cut.jsonl.gz: truncated"]),
        ("NationalTeam1.json.gz", gzip.compress(b"[{}]")[:12], {"format": "cptc"}, ["NationalTeam1.json.gz: truncated"]),
        ("plain.csv.gz", _LINES[:100], CSV, ["plain.csv.gz: truncated or corrupt gzip"]),
        # wrong delimiter: the header reads as one column
        ("semi.csv", "time;entity;type\n1700000000;h;a\n", CSV, ["semi.csv:1", "set data.delimiter=';'"]),
        ("tab.csv", "time\tentity\ttype\n1700000000\th\ta\n", CSV, ["tab.csv:1", "set data.delimiter='\\t'"]),
        ("pipe.csv", "time|entity|type\n1700000000|h|a\n", CSV, ["pipe.csv:1", "set data.delimiter='|'"]),
        ("comma.csv", HEADER + GOOD, {**CSV, "delimiter": ";"}, ["comma.csv:1", "set data.delimiter=','"]),
        # missing required columns
        ("nocol.csv", "time,host,type\n1700000000,h,a\n", CSV,
         ["nocol.csv:1: missing column(s) entity", "present: time, host, type", "data.columns.<field>=<column>"]),
        ("noattr.csv", HEADER + GOOD, {**CSV, "attributes": ["user"]}, ["noattr.csv:1: missing column(s) user"]),
        # a column the options use, twice in the header (which copy is meant?); quoted too (the csv-module path)
        ("twice.csv", "time,entity,type,entity\n1700000000,sensor,a,victim\n", CSV,
         ["twice.csv:1: column 'entity' appears more than once in the header", "rename the copies"]),
        ("twice_quoted.csv", 'time,entity,type,entity\n1700000000,"sen""sor",a,victim\n', CSV,
         ["twice_quoted.csv:1: column 'entity' appears more than once"]),
        ("ait.csv", "time,name,ip,host\n1700000000,n,10.0.0.1,h\n", {"format": "ait_ads"},
         ["ait.csv:1: missing column(s) detector, short"]),
        # empty file, header only
        ("empty.csv", "", CSV, ["empty.csv: empty file", "header line and data rows"]),
        ("blank.csv", "\n \r\n\t\n", CSV, ["blank.csv: empty file"]),
        ("empty.csv.gz", gzip.compress(b""), CSV, ["empty.csv.gz: empty file"]),
        ("empty.json", "", {"format": "wazuh"}, ["empty.json: empty file", "one JSON object a line"]),
        ("blank.json", "\n\n  \n", {"format": "suricata"}, ["blank.json: empty file"]),
        ("NationalTeam2.json", "", {"format": "cptc"}, ["NationalTeam2.json: empty file", "JSON array"]),
        ("header.csv", HEADER, CSV, ["header.csv: header only, no data rows"]),
        ("header_crlf.csv", "time,entity,type\r\n\r\n", CSV, ["header_crlf.csv: header only"]),
        ("ait_header.csv", "time,name,ip,host,short,time_label,event_label\n", {"format": "ait_ads"}, ["header only"]),
        # every row unusable: the first reason and the fix
        ("never.csv", HEADER + "never,h,a\nlater,h,b\n", CSV,
         ["never.csv: no usable alerts (2 rejected", "unparsable or out-of-range time", "data.time_unit"]),
        ("ms_as_s.csv", HEADER + "1700000000000,h,a\n", {**CSV, "time_unit": "s"}, ["ms_as_s.csv: no usable alerts", "data.time_unit"]),
        ("s_as_ms.csv", HEADER + "1700000000,h,a\n", {**CSV, "time_unit": "ms"}, ["s_as_ms.csv: no usable alerts", "1990..2100"]),
        ("short.csv", HEADER + "1700000000,h\n", CSV, ["short.csv: no usable alerts", "expected 3 fields, found 2"]),
        ("typo.json", wazuh_line(), {"format": "wazuh", "columns": {"entity": "agent.nme"}},
         ["typo.json: no usable alerts", "empty entity column 'agent.nme'", "check the file and data.columns"]),
        # a JSON array (pretty-printed, or on one line) where one object a line is read; only flow events
        ("pretty.json", json.dumps([WAZUH_OK], indent=2), {"format": "wazuh"},
         ["pretty.json: no usable alerts (12 rejected, first reason: invalid JSON", "one JSON object a line",
          "jq -c '.[]'"]),
        ("array.json", json.dumps([WAZUH_OK]), {"format": "wazuh"}, ["not a JSON object (array)", "jq -c '.[]'"]),
        ("flows.json", '{"event_type": "flow"}\n{"event_type": "stats"}\n', {"format": "suricata"},
         ["flows.json: no usable alerts (2 rejected", "no alert events (event_type alert)", "data.path"]),
        # a quote never closed would swallow the rest of the file into one field
        ("quote.csv", HEADER + GOOD + '1700000001,h,"scan\n' + GOOD * 50, CSV,
         ["quote.csv:3: a quoted field opened in this record is never closed", "close the quote"]),
        ("quote_header.csv", 'time,"entity,type\n' + GOOD, CSV, ["quote_header.csv:1: a quoted field"]),
        # JSON array files (CPTC)
        ("NationalTeam3.json", '{"result": {}}', {"format": "cptc"}, ["NationalTeam3.json: expected a non-empty JSON array"]),
        ("NationalTeam4.json", "[]", {"format": "cptc"}, ["NationalTeam4.json: expected a non-empty JSON array"]),
        ("NationalTeam5.json", '[{"result": {"a": 1}},\n{"result": ', {"format": "cptc"},
         ["NationalTeam5.json:2: invalid JSON at column", "one JSON array"]),
        ("NationalTeam6.json", '[{"result": {"n": 1' + "0" * 5000 + "}}]", {"format": "cptc"},
         ["NationalTeam6.json: unreadable JSON (a number with too many digits)"]),
        ("NationalTeam7.json", "[" * 100_000 + "]" * 100_000, {"format": "cptc"}, ["NationalTeam7.json: unreadable JSON (nested too deeply)"]),
        ("NationalTeam8.json", '[1, "x", {"preview": true}]', {"format": "cptc"},
         ["NationalTeam8.json: no usable alerts (3 rejected, first reason: record has no 'result' object)"]),
        # not the format it claims
        ("alerts.parquet", b"PAR1 but not really", {"format": "parquet"}, ["alerts.parquet: not a readable Parquet file"]),
        # binary files given as text: were 'missing column(s) ...; present: PK\x03\x04\x14\x00...; set data.delimiter'
        ("alerts.xlsx", _ZIP, CSV, ["alerts.xlsx: a ZIP archive or Excel workbook (.xlsx), not text", "save the sheet as CSV"]),
        ("alerts.json.gz", gzip.compress(_ZIP), {"format": "wazuh"}, ["alerts.json.gz: a ZIP archive", "unzip it"]),
        ("alerts.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), CSV, ["alerts.xls: an Excel 97-2003 workbook"]),
        ("export.csv", b"PAR1" + bytes(100), CSV, ["export.csv: a Parquet file, not text", "data=parquet"]),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v and len(v) < 40 else "",
)
def test_unusable_file_is_one_clear_error(tmp_path, name, data, cfg, needles):
    assert_one_line_error(load_error(tmp_path, name, data, cfg), *needles)


@pytest.mark.parametrize(
    ("cfg", "needles"),
    [
        ({**CSV, "colums": {"time": "x"}}, ["data.colums is not an option of data format csv", "valid: columns"]),
        ({**CSV, "columns": {"tim": "ts"}}, ["data.columns.tim is not known", "valid keys: time, entity, type"]),
        ({**CSV, "columns": {"time": ""}}, ["data.columns.time=''", "must be a column name"]),
        ({"format": "xml"}, ["data.format='xml' is not known", "valid formats: csv"]),
        ({**CSV, "time_unit": "h"}, ["data.time_unit='h' is not known", "use auto, s, ms or iso"]),
        ({**CSV, "delimiter": ";;"}, ["data.delimiter=';;' must be one character"]),
        # a list for a text option (data.time_unit=[s]): TypeError tracebacks, "unhashable type: 'list'"
        ({**CSV, "time_unit": ["s"]}, ["data.time_unit=['s'] is not known", "use auto, s, ms or iso"]),
        ({**CSV, "delimiter": [";"]}, ["data.delimiter=[';'] must be one character"]),
        ({**CSV, "attributes": "user"}, ["data.attributes='user' must be a list"]),
        ({**CSV, "attributes": 5}, ["data.attributes=5 must be a list"]),  # was a TypeError traceback
        ({**CSV, "attributes": {"entity": "user"}}, ["'entity' is a reserved column name", "rename it"]),
        # were AttributeError / TypeError tracebacks
        ({**CSV, "labels": 5}, ["data.labels=5 must be a mapping (or null)", "+data.labels.attack=<column>"]),
        ({**CSV, "columns": 5}, ["data.columns=5 must be a mapping (or null)", "data.columns.entity=host"]),
        ({**CSV, "labels": {"attack": {"col": "x"}}}, ["data.labels.attack=", "{column: <name>, negative: <benign value>}"]),
        ({"format": "wazuh", "delimiter": ","}, ["data.delimiter is not an option of data format wazuh"]),
    ],
)
def test_mistyped_config_is_one_clear_error(tmp_path, cfg, needles):
    assert_one_line_error(load_error(tmp_path, "a.csv", HEADER + GOOD, cfg), *needles)


@pytest.mark.parametrize(("name", "text", "cfg"), [
    ("csv.csv", HEADER.replace("\n", ",verdict\n") + "1700000000,h,a,attack\n",
     {**CSV, "attributes": ["verdict"], "labels": {"attack": "verdict"}}),
    ("csv_type.csv", HEADER.replace("\n", ",verdict\n") + "1700000000,h,a,attack\n",
     {**CSV, "columns": {"type": "verdict"}, "labels": {"attack": {"column": "verdict", "negative": "benign"}}}),
    ("ait.csv", "time,name,ip,host,short,time_label,event_label\n1700000000,n,10.0.0.1,h,W-a,false_positive,-\n",
     {"format": "ait_ads", "attributes": ["ip", "event_label"]}),
])
def test_a_label_column_the_model_would_read_is_an_error(tmp_path, name, text, cfg):
    """A label column listed in data.attributes (or as a core column) was given to the model as
    input: it saw the answer and the metrics were inflated, silently."""
    column = "event_label" if "ait" in name else "verdict"
    assert_one_line_error(load_error(tmp_path, name, text, cfg), f"{name}:1: column {column!r} holds labels",
                          "the model would see the labels")


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(DataError) as err:
        load_alerts(CSV, tmp_path / "nope.csv")
    assert_one_line_error(str(err.value), "nope.csv: no such file or folder", "data.path=<existing file or folder>")
    with pytest.raises(DataError) as err:
        load_alerts(CSV, None)
    assert_one_line_error(str(err.value), "data.path is not set")
    with pytest.raises(DataError) as err:  # data.path=5 on the command line: was a TypeError traceback
        load_alerts(CSV, 5)
    assert_one_line_error(str(err.value), "data.path=5 must be a file or folder path")
    write(tmp_path / "notes.txt", "not alerts")
    with pytest.raises(DataError) as err:
        load_alerts(CSV, tmp_path)
    assert_one_line_error(str(err.value), "folder has no files matching *.csv")


def test_unknown_label_value_names_line_and_fix(tmp_path):
    path = write(tmp_path / "l.csv", "time,entity,type,bad\n1700000000,h,a,0\n1700000001,h,a,maybe\n")
    with pytest.raises(DataError) as err:
        load_alerts({**CSV, "labels": {"attack": "bad"}}, path)
    assert_one_line_error(str(err.value), "l.csv:3: label 'maybe'", "data.labels.attack={column: bad, negative:")


# --- loads, with the bad rows rejected ------------------------------------------------------


def test_single_alert(tmp_path):
    table = load_alerts(CSV, write(tmp_path / "one.csv", HEADER + GOOD.rstrip("\n")))  # no final newline
    assert_accounted(table, 1)
    assert table.alerts[["entity", "type", "source"]].values.tolist() == [["h1", "login", "one.csv:2"]]


def test_single_entity(tmp_path):
    rows = "".join(f"{1700000000 + 60 * i},web-1,{t}\n" for i, t in enumerate("abcab"))
    table = load_alerts(CSV, write(tmp_path / "ent.csv", HEADER + rows))
    assert_accounted(table, 5)
    assert table.alerts["entity"].unique().tolist() == ["web-1"]


def test_a_repeated_column_nobody_uses_is_fine(tmp_path):
    """Exports often repeat a column; only a repeated column the options map is an error."""
    table = load_alerts(CSV, write(tmp_path / "extra.csv", "time,entity,type,note,note\n1700000000,h,a,x,y\n"))
    assert list(table.alerts["entity"]) == ["h"]


def test_duplicated_rows_are_separate_alerts(tmp_path):
    table = load_alerts(CSV, write(tmp_path / "dup.csv", HEADER + GOOD * 3))
    assert_accounted(table, 3)
    assert table.alerts["source"].tolist() == ["dup.csv:2", "dup.csv:3", "dup.csv:4"]
    assert table.alerts.drop(columns=["alert_id", "source"]).duplicated(keep="first").sum() == 2


def test_bytes_that_are_not_utf8_are_replaced_with_a_warning(tmp_path, caplog):
    data = HEADER.encode() + b"1700000000,caf\xe9,a\n1700000001,h\xff\xfe,b\n1700000002,ok,c\n"
    with caplog.at_level(logging.WARNING):
        table = load_alerts(CSV, write(tmp_path / "latin1.csv", data))
    assert_accounted(table, 3)
    assert table.alerts["entity"].tolist() == ["caf\ufffd", "h\ufffd\ufffd", "ok"]
    assert "latin1.csv: bytes that are not UTF-8 (first at byte 31)" in caplog.text
    jsonl = json.dumps(WAZUH_OK).replace("web-1", "web-\\u00e9").encode().replace(b"\\u00e9", b"\xe9")
    with caplog.at_level(logging.WARNING):
        table = load_alerts({"format": "wazuh"}, write(tmp_path / "latin1.json", jsonl))
    assert table.alerts["entity"].tolist() == ["web-\ufffd"]
    assert "latin1.json: bytes that are not UTF-8" in caplog.text


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_text_with_a_byte_order_mark_is_read(tmp_path, encoding):
    """Excel's 'Unicode text' export and Windows PowerShell's `>` write UTF-16 with a byte order
    mark; it was read byte by byte as U+FFFD and NULs (missing columns 'present: ??t i m e')."""
    bom = "\ufeff" if encoding == "utf-16-be" else ""  # the utf-16 codec writes its own BOM
    text = "time\tentity\ttype\r\n1700000000\tcaf\u00e9\ta\r\n1700000001\th\r\n"
    table = load_alerts({**CSV, "delimiter": "tab"}, write(tmp_path / "excel.txt.csv", (bom + text).encode(encoding)))
    assert_accounted(table, 2)
    assert table.alerts["entity"].tolist() == ["caf\u00e9"]
    assert table.rejected["source"].tolist() == ["excel.txt.csv:3"]
    lines = (bom + wazuh_line() + "\r\n" + wazuh_line(agent={"name": "\u00e9"}) + "\r\n").encode(encoding)
    table = load_alerts({"format": "wazuh"}, write(tmp_path / "alerts.json", lines))
    assert table.alerts["entity"].tolist() == ["web-1", "\u00e9"]


def test_times_seconds_milliseconds_iso_and_bad_ones(tmp_path):
    base = pd.Timestamp(1_700_000_000, unit="s", tz="UTC")
    cases = [  # (time cell, parsed time or None = rejected)
        ("1700000000", base),
        ("1700000000000", base),  # above 1e11: milliseconds
        ("1700000000.5", base + pd.Timedelta(milliseconds=500)),
        # exact to the microsecond (were 1 ns under it: written as ...00.000999Z and ...00.122999Z)
        ("1700000000001", base + pd.Timedelta(milliseconds=1)),
        ("1700000000.123", base + pd.Timedelta(milliseconds=123)),
        ("1700000000.000002", base + pd.Timedelta(microseconds=2)),
        ("1.7e9", base),
        ("2023-11-14T22:13:20Z", base),
        ("2023-11-14T23:13:20+01:00", base),
        ("2023-11-14 22:13:20", base),  # naive: taken as UTC
        ("1700000000000000", None),  # microseconds read as ms: year 55 840, out of range
        ("0", None), ("-1", None), ("631151999", None),  # before 1990
        ("4102444800", None),  # 2100-01-01
        ("99999999999999999999999", None), ("1e300", None), ("nan", None), ("inf", None),
        ("", None), ("never", None), ("2024-02-30T00:00:00Z", None), ("2024-13-01", None), ("12:00", None),
        ("2500-01-01T00:00:00Z", None), ("1000-01-01", None),  # ISO beyond pandas' nanosecond range
    ]
    text = HEADER + "".join(f"{cell},h,t{i}\n" for i, (cell, _) in enumerate(cases))
    table = load_alerts(CSV, write(tmp_path / "t.csv", text))
    assert_accounted(table, len(cases))
    kept = [i for i, (_, want) in enumerate(cases) if want is not None]
    assert table.alerts["alert_id"].tolist() == kept
    assert table.alerts["time"].tolist() == [cases[i][1] for i in kept]
    assert set(table.rejected["reason"]) == {"unparsable or out-of-range time in column 'time'"}
    # An explicit unit rejects the other unit's numbers instead of misreading them.
    seconds = load_alerts({**CSV, "time_unit": "s"}, str(tmp_path / "t.csv"))
    assert 1 not in seconds.alerts["alert_id"].tolist() and 0 in seconds.alerts["alert_id"].tolist()
    millis = load_alerts({**CSV, "time_unit": "ms"}, str(tmp_path / "t.csv"))
    assert millis.alerts["alert_id"].tolist()[:1] == [1] and 0 not in millis.alerts["alert_id"].tolist()


def test_missing_values(tmp_path):
    text = (
        "time,entity,type,user,proc\n"
        "1700000000,h,a,alice,\n"  # empty attribute: (missing)
        "1700000001,h,a,,\n"
        "1700000002,,a,bob,x\n"  # empty entity: rejected
        "1700000003,   ,a,bob,x\n"  # blank entity: rejected
        "1700000004,h,,bob,x\n"  # empty type: rejected
        ",h,a,bob,x\n"  # empty time: rejected
        "1700000006,h,a, carol ,x\n"  # values are stripped
    )
    table = load_alerts({**CSV, "attributes": ["user", "proc"]}, write(tmp_path / "m.csv", text))
    assert_accounted(table, 7)
    assert table.alerts[["user", "proc"]].values.tolist() == [["alice", "(missing)"], ["(missing)", "(missing)"], ["carol", "x"]]
    assert table.rejected["reason"].tolist() == [
        "empty entity column 'entity'", "empty entity column 'entity'", "empty type column 'type'",
        "unparsable or out-of-range time in column 'time'",
    ]
    assert table.rejected["raw"].iloc[0] == "1700000002,,a,bob,x"


@pytest.mark.parametrize("note", ["ok", '5" disk'], ids=["pandas", "csv-module"])  # an odd quote: the csv module reads
def test_header_names_are_trimmed_as_values_are(tmp_path, note):
    """'ts, host, rule' (a space after each comma) named columns ' host' and ' rule', so
    data.columns.entity=host stopped with 'missing column(s) host, rule'."""
    text = f"ts, host, rule , note\n1700000000, ws-1, scan, {note}\n"
    cfg = {**CSV, "columns": {"time": "ts", "entity": "host", "type": "rule"}, "attributes": ["note"]}
    table = load_alerts(cfg, write(tmp_path / "spaced.csv", text))
    assert table.alerts[["entity", "type", "note"]].values.tolist() == [["ws-1", "scan", note]]
    with pytest.raises(DataError, match="column 'host' appears more than once"):
        load_alerts(cfg, write(tmp_path / "twice.csv", text.replace("note", "host ", 1)))


def test_wrong_field_counts_and_blank_lines(tmp_path):
    text = HEADER + GOOD + "\n" + "1700000001,h\n" + "1700000002,h,a,extra\n" + "  \n" + GOOD + "1700000003\n"
    table = load_alerts(CSV, write(tmp_path / "f.csv", text))
    assert_accounted(table, 5)  # blank lines are no input rows
    assert table.alerts["source"].tolist() == ["f.csv:2", "f.csv:7"]
    assert dict(zip(table.rejected["source"], table.rejected["reason"])) == {
        "f.csv:4": "expected 3 fields, found 2", "f.csv:5": "expected 3 fields, found 4", "f.csv:8": "expected 3 fields, found 1",
    }


def test_quote_after_a_space_is_no_quoted_field(tmp_path):
    """In 'h, "a, b"' the quote does not open the field (it is not its first character), so the
    row has 4 fields and is rejected. The numpy bounds counted 3 and pandas, reading 4, dropped the
    last one with a ParserWarning ('loss of data'): the row was ranked with type '"a'."""
    text = HEADER + '1700000000,h, "a, b"\n' + GOOD
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = load_alerts(CSV, write(tmp_path / "spaced_quote.csv", text))
    assert_accounted(table, 2)
    assert table.rejected[["source", "reason"]].values.tolist() == [["spaced_quote.csv:2", "expected 3 fields, found 4"]]


def test_bare_carriage_return_line_ends(tmp_path):
    table = load_alerts(CSV, write(tmp_path / "mac.csv", HEADER.replace("\n", "\r") + GOOD.replace("\n", "\r") * 2))
    assert_accounted(table, 2)
    assert table.alerts["source"].tolist() == ["mac.csv:2", "mac.csv:3"]


def test_field_of_one_megabyte(tmp_path):
    big = "x" * (1 << 20)
    text = "time,entity,type,cmd\n" + f"1700000000,h,a,{big}\n" + f'1700000001,h,b,"{big[:-1]},"\n' + f"never,h,c,{big}\n"
    table = load_alerts({**CSV, "attributes": ["cmd"]}, write(tmp_path / "big.csv", text))
    assert_accounted(table, 3)
    assert table.alerts["cmd"].str.len().tolist() == [1 << 20, 1 << 20]
    assert len(table.rejected["raw"].iloc[0]) == 500  # the raw text of a rejected row is cut
    line = json.dumps({**WAZUH_OK, "full_log": big})
    table = load_alerts({"format": "wazuh", "attributes": {"log": "full_log"}}, write(tmp_path / "big.json", line + "\n{" + big))
    assert_accounted(table, 2)
    assert len(table.alerts["log"].iloc[0]) == 1 << 20 and len(table.rejected["raw"].iloc[0]) == 500


def test_lone_surrogate_escapes_in_json_strings_become_replacement_characters(tmp_path):
    """"\\ud800" is valid JSON but no UTF-8 text: it crashed the column build (pandas' Arrow
    strings). In a core field, an attribute or a rejected record's raw text it becomes U+FFFD."""
    lines = ['{"timestamp": "2024-03-04T10:00:00Z", "agent": {"name": "web\\ud800"}, "rule": {"id": "5710", "description": "x\\udfff"}}',
             '{"timestamp": "never \\ud800", "agent": {"name": "w"}, "rule": {"id": "1"}}']
    table = load_alerts({"format": "wazuh", "attributes": {"description": "rule.description"}},
                        write(tmp_path / "s.json", "\n".join(lines)))
    assert_accounted(table, 2)
    assert table.alerts[["entity", "description"]].values.tolist() == [["web\ufffd", "x\ufffd"]]
    assert "never \ufffd" in table.rejected["raw"].iloc[0]


def test_broken_json_lines_are_rejected_with_line_numbers(tmp_path):
    lines = [
        wazuh_line(),
        '{"timestamp": "2024-03-04T10:00:00Z", "agent": ',  # cut mid-record
        "not json at all",
        "",  # blank: no input row
        "[1, 2]", '"text"', "null", "42",
        "{'single': 'quotes'}",
        '{"a": 1} trailing',
        '{"n": 1' + "0" * 5000 + "}",  # an integer Python will not read
        "[" * 50_000 + "]" * 50_000,  # nesting deeper than Python's recursion limit
        wazuh_line(rule={"id": "5711"}),
    ]
    table = load_alerts({"format": "wazuh"}, write(tmp_path / "w.json", "\n".join(lines)))
    assert_accounted(table, 12)
    assert table.alerts["source"].tolist() == ["w.json:1", "w.json:13"]
    reasons = dict(zip(table.rejected["source"], table.rejected["reason"]))
    assert reasons["w.json:2"].startswith("invalid JSON (Expecting value at column")
    assert reasons["w.json:3"].startswith("invalid JSON")
    assert [reasons[f"w.json:{i}"] for i in (5, 6, 7, 8)] == [
        "not a JSON object (array)", "not a JSON object (string)", "not a JSON object (null)", "not a JSON object (number)",
    ]
    assert reasons["w.json:10"].startswith("invalid JSON (Extra data")
    assert reasons["w.json:11"] == "unreadable JSON (a number with too many digits)"
    assert reasons["w.json:12"] == "unreadable JSON (nested too deeply)"


def test_json_objects_missing_nested_fields(tmp_path):
    lines = [
        wazuh_line(),
        wazuh_line(agent=None),  # no agent
        wazuh_line(agent="web-1"),  # agent is text, not an object
        wazuh_line(agent={"name": None}),
        wazuh_line(rule={"level": 3}),  # rule without id
        wazuh_line(rule=["5710"]),  # rule is a list
        wazuh_line(timestamp=None),
        wazuh_line(rule={"id": 5712, "groups": [["a", ["b"]], "c"], "level": {"x": 1}}),  # odd but usable
        json.dumps({"timestamp": "2024-03-04T10:00:00Z", "agent.name": "flat-1", "rule.id": "1"}),  # flattened keys
        wazuh_line(agent={"name": "web-2"}, rule={"id": "5710", "groups": ["[" * 900 + "]" * 900]}),
        wazuh_line(rule={"id": "5710", "groups": json.loads("[" * 900 + '"deep"' + "]" * 900)}),
    ]
    table = load_alerts({"format": "wazuh"}, write(tmp_path / "n.json", "\n".join(lines)))
    assert_accounted(table, len(lines))
    assert table.alerts["source"].tolist() == ["n.json:1", "n.json:8", "n.json:9", "n.json:10", "n.json:11"]
    assert table.alerts[["type", "groups", "level"]].iloc[1].tolist() == ["5712", "a|b|c", '{"x":1}']
    assert table.alerts["groups"].iloc[-1] == "deep"
    assert table.alerts["description"].eq("(missing)").all()
    reasons = dict(zip(table.rejected["source"], table.rejected["reason"]))
    assert reasons == {
        "n.json:2": "empty entity column 'agent.name'", "n.json:3": "empty entity column 'agent.name'",
        "n.json:4": "empty entity column 'agent.name'", "n.json:5": "empty type column 'rule.id'",
        "n.json:6": "empty type column 'rule.id'", "n.json:7": "unparsable or out-of-range time in column 'timestamp'",
    }


# --- the checked-in corpus ----------------------------------------------------------------------

MESSY_CSV = {"format": "csv", "columns": {"time": "ts", "entity": "host", "type": "rule"},
             "attributes": ["user", "cmd"], "labels": {"attack": "verdict"}}


def test_messy_csv_corpus(caplog):
    with caplog.at_level(logging.WARNING):
        table = load_alerts(MESSY_CSV, CORPUS / "messy_alerts.csv")
    assert "messy_alerts.csv: bytes that are not UTF-8" in caplog.text
    assert_accounted(table, 19)
    assert table.alerts["alert_id"].tolist() == [0, 1, 2, 8, 9, 10, 11, 17, 18]
    assert table.alerts["source"].tolist()[3] == "messy_alerts.csv:11"  # a quoted field spans lines 11-12
    assert table.alerts["cmd"].tolist()[2:5] == ['=HYPERLINK("http://example.com","x")', "multi\nline", "(missing)"]
    assert table.alerts["entity"].iloc[5] == "caf\ufffd-host"
    assert table.label("attack").tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0]
    reasons = dict(zip(table.rejected["alert_id"], table.rejected["reason"]))
    assert reasons == {
        3: "unparsable or out-of-range time in column 'ts'", 4: "empty entity column 'host'",
        5: "empty type column 'rule'", 6: "expected 6 fields, found 4", 7: "expected 6 fields, found 7",
        12: "unparsable or out-of-range time in column 'ts'", 13: "expected 6 fields, found 2",
        14: "expected 6 fields, found 2", 15: "expected 6 fields, found 2", 16: "expected 6 fields, found 2",
    }


def test_messy_suricata_corpus():
    table = load_alerts({"format": "suricata"}, CORPUS / "messy_eve.json")
    assert_accounted(table, 13)  # 14 lines, one blank
    assert table.alerts["source"].tolist() == [f"messy_eve.json:{i}" for i in (1, 9, 10, 11, 12, 14)]
    assert table.alerts["type"].iloc[-1] == "flat key"
    assert table.alerts["category"].tolist()[:2] == ["Attempted Information Leak", "(missing)"]
    at_ten = pd.Timestamp("2024-03-04T10:00:00Z")
    assert table.alerts["time"].tolist()[2:5] == [at_ten, at_ten + pd.Timedelta(minutes=11), at_ten]
    assert dict(zip(table.rejected["source"], table.rejected["reason"])) == {
        "messy_eve.json:2": "not an alert event (event_type=flow)",
        "messy_eve.json:3": "empty entity column 'dest_ip'",
        "messy_eve.json:4": "empty type column 'alert.signature'",
        "messy_eve.json:5": "empty type column 'alert.signature'",
        "messy_eve.json:6": "invalid JSON (Expecting value at column 38)",
        "messy_eve.json:8": "not a JSON object (array)",
        "messy_eve.json:13": "unparsable or out-of-range time in column 'timestamp'",
    }
