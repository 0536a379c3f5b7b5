"""Alert loaders on the real data sets (skipped where ../shared/data is absent) and on bad input."""

import gzip
import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from car.alerts import AlertTable, DataError
from car.data import FORMATS, load_alerts, loader
from car.data.csv_rows import _slow, read_csv_rows
from car.data.json_records import field_text, field_value

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
CONF = REPO / "conf" / "data"


def shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (it is present in CI)")
    return path


def config(fmt: str, **overrides) -> dict:
    """The shipped Hydra data config of a format, as a plain dict, with overrides."""
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"{fmt}.yaml"))
    return {**cfg, **overrides}


def assert_accounted(table: AlertTable, n_input: int) -> None:
    """Every input row is either an alert or rejected, and ids partition range(n)."""
    assert len(table.alerts) + len(table.rejected) == n_input
    ids = np.sort(np.concatenate([table.alerts["alert_id"], table.rejected["alert_id"]]).astype(np.int64))
    assert np.array_equal(ids, np.arange(n_input))
    assert table.alerts["alert_id"].is_monotonic_increasing
    if table.labels is not None:
        assert len(table.labels) == len(table.alerts)


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- real data ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shaw_raw() -> pd.DataFrame:
    return pd.read_csv(shared("ait-ads", "shaw_alerts.csv.gz"), dtype=str, keep_default_na=False)


def test_ait_ads_shaw_loads_with_both_label_kinds(shaw_raw):
    path = shared("ait-ads", "shaw_alerts.csv.gz")
    table = load_alerts(OmegaConf.create(config("ait_ads")), str(path))
    assert len(table) == 70_782
    assert_accounted(table, 70_782)
    assert table.label_kinds == ["strict", "window"]
    strict, window = table.label("strict"), table.label("window")
    assert strict.sum() == (shaw_raw["event_label"] != "-").sum()
    assert window.sum() == (shaw_raw["time_label"] != "false_positive").sum()
    assert 0.01 < strict.mean() < 0.5 and 0.01 < window.mean() < 0.5
    assert list(table.labels.columns) == ["label_strict", "label_window", "event_label", "time_label"]
    assert table.attributes == ["ip", "name", "detector"]
    assert set(table.alerts["detector"]) <= {"W", "S", "A"}
    assert table.alerts["entity"].tolist() == shaw_raw["host"].tolist()
    assert table.alerts["type"].tolist() == shaw_raw["short"].tolist()
    assert table.alerts["time"].min() >= pd.Timestamp("2022-01-01", tz="UTC")
    assert table.alerts["source"].iloc[0] == "shaw_alerts.csv.gz:2"
    assert table.unlabeled().labels is None


def test_ait_ads_without_label_columns(tmp_path, shaw_raw):
    path = tmp_path / "nolabels.csv"
    shaw_raw.drop(columns=["time_label", "event_label"]).head(3000).to_csv(path, index=False)
    table = load_alerts(config("ait_ads"), str(path))
    assert table.labels is None and table.label_kinds == []
    assert len(table) == 3000
    assert_accounted(table, 3000)


def test_cptc_team_with_bom():
    path = shared("cptc-2017", "NationalTeam1.json.gz")
    assert gzip.open(path).read(3) == b"\xef\xbb\xbf"
    table = load_alerts(config("cptc"), str(path))
    assert len(table) == 4274
    assert_accounted(table, 4274)
    assert table.labels is None
    assert table.attributes == [
        "src_ip", "src_port", "dest_port", "proto", "category", "severity", "signature_id", "sensor",
    ]
    assert table.alerts["entity"].str.startswith("10.").all()
    attacker = table.alerts[["src_ip", "entity"]].apply(lambda c: c.str.startswith("10.0.254."))
    assert attacker.any(axis=1).mean() > 0.9
    assert table.alerts["time"].dt.year.eq(2017).all()
    assert table.alerts["source"].iloc[17] == "NationalTeam1.json.gz:record 17"
    assert (table.alerts["dest_port"] == "(missing)").sum() == 4274 - 4240  # ICMP alerts have no ports


def test_wazuh_sample():
    path = shared("ait-lds-wazuh", "ossec_insect.json")
    table = load_alerts(config("wazuh"), str(path))
    assert len(table) == 497
    assert_accounted(table, 497)
    first = table.alerts.iloc[0]
    assert first[["entity", "type", "level", "groups"]].tolist() == ["user-0", "20100", "8", "ids|fts"]
    eve = table.alerts["decoder"] == "json"
    assert eve.any() and (table.alerts.loc[eve, "srcip"] != "(missing)").all()  # data.src_ip fallback


def test_suricata_from_cptc_raw_eve_lines(tmp_path):
    records = json.loads(gzip.open(shared("cptc-2017", "NationalTeam5.json.gz")).read().decode("utf-8-sig"))
    lines = [r["result"]["_raw"] for r in records[:300]]
    flow = {"timestamp": "2017-11-04T12:00:00.000000+0000", "event_type": "flow", "src_ip": "10.0.0.1"}
    lines.insert(5, json.dumps(flow))
    path = tmp_path / "eve.json.gz"
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    table = load_alerts(config("suricata"), str(path))
    assert len(table) == 300
    assert_accounted(table, 301)
    assert table.rejected["reason"].tolist() == ["not an alert event (event_type=flow)"]
    assert table.rejected["source"].tolist() == ["eve.json.gz:6"]
    assert table.alerts["type"].iloc[0] == records[0]["result"]["alert.signature"]


# --- JSON formats on small made-up input ---------------------------------------------------


def eve(i: int, **extra) -> dict:
    """A Suricata EVE alert event."""
    return {
        "timestamp": f"2024-03-04T10:{i:02d}:00.000000+0000", "event_type": "alert", "src_ip": "203.0.113.9",
        "src_port": 40000 + i, "dest_ip": f"10.1.0.{i % 3}", "dest_port": 22, "proto": "TCP",
        "alert": {"signature_id": 2001219, "signature": "ET SCAN Potential SSH Scan",
                  "category": "Attempted Information Leak", "severity": 2},
        **extra,
    }


def test_suricata_rejects_other_events_and_broken_lines(tmp_path):
    lines = [json.dumps(eve(0)), json.dumps({"event_type": "dns", "timestamp": "2024-03-04T10:00:00Z"}),
             "", '{"event_type": "alert", "broken', json.dumps(eve(1, host="sensor-a")), "[1, 2]"]
    table = load_alerts({"format": "suricata"}, write(tmp_path / "eve.json", "\n".join(lines) + "\n"))
    assert_accounted(table, 5)  # the blank line is no input row
    assert table.alerts["sensor"].tolist() == ["(missing)", "sensor-a"]
    assert table.alerts["signature_id"].tolist() == ["2001219"] * 2
    reasons = dict(zip(table.rejected["source"], table.rejected["reason"]))
    assert reasons["eve.json:2"] == "not an alert event (event_type=dns)"
    assert reasons["eve.json:4"].startswith("invalid JSON")
    assert reasons["eve.json:6"] == "not a JSON object (array)"


def test_wazuh_broken_lines_and_missing_fields(tmp_path):
    good = {"timestamp": "2020-03-04T13:55:05.224939+0000", "agent": {"name": "web-1"},
            "rule": {"id": "5710", "level": 5, "groups": ["sshd"]}, "location": "/var/log/auth.log"}
    no_rule = {k: v for k, v in good.items() if k != "rule"}
    bad_time = {**good, "timestamp": "yesterday"}
    lines = [json.dumps(good), "{not json", json.dumps(no_rule), json.dumps(bad_time)]
    table = load_alerts({"format": "wazuh"}, write(tmp_path / "alerts.json", "\n".join(lines)))
    assert len(table) == 1 and table.alerts["groups"].iloc[0] == "sshd"
    assert_accounted(table, 4)
    assert table.rejected["source"].tolist() == ["alerts.json:2", "alerts.json:3", "alerts.json:4"]
    assert table.rejected["reason"].iloc[1] == "empty type column 'rule.id'"
    assert "time" in table.rejected["reason"].iloc[2]


def test_cptc_bad_records_are_rejected_by_index(tmp_path):
    ok = {"result": {"timestamp": "2017-11-04T12:48:35.198583+0000", "dest_ip": "10.0.0.5",
                     "alert.signature": "ET SCAN x", "src_ip": "10.0.254.3"}}
    from_raw = {"result": {"_time": "2017-11-04T08:48:36.300-0400", "_raw": json.dumps(eve(1))}}
    missing = {"result": {"timestamp": "2017-11-04T12:48:35Z", "alert.signature": "ET SCAN x"}}
    path = tmp_path / "NationalTeam9.json"
    path.write_text(json.dumps([ok, {"preview": False}, from_raw, missing]))
    table = load_alerts({"format": "cptc"}, str(path))
    assert_accounted(table, 4)
    assert table.alerts["entity"].tolist() == ["10.0.0.5", "10.1.0.1"]
    assert table.alerts["type"].iloc[1] == "ET SCAN Potential SSH Scan"
    assert table.rejected["source"].tolist() == ["NationalTeam9.json:record 1", "NationalTeam9.json:record 3"]
    with pytest.raises(DataError, match=r"NationalTeam9.json:1: invalid JSON"):
        path.write_text('[{"result": ')
        load_alerts({"format": "cptc"}, str(path))


def test_cptc_null_or_empty_field_falls_back_to_the_raw_eve_line(tmp_path):
    """A flattened field present but null or "" does not hide the value of the record's _raw EVE
    line (a deleted field already did not)."""
    raw = json.dumps(eve(1))
    records = [{"result": {"_time": "2017-11-04T08:48:36.300-0400", "dest_ip": None, "_raw": raw}},
               {"result": {"_time": "2017-11-04T08:48:37.300-0400", "alert.signature": "", "_raw": raw}}]
    path = tmp_path / "NationalTeam8.json"
    path.write_text(json.dumps(records))
    table = load_alerts({"format": "cptc"}, str(path))
    assert_accounted(table, 2)
    assert table.rejected.empty
    assert table.alerts["entity"].tolist() == ["10.1.0.1"] * 2
    assert table.alerts["type"].tolist() == ["ET SCAN Potential SSH Scan"] * 2


def test_dotted_field_access():
    record = {"alert.signature": "flat", "rule": {"id": "5710", "groups": ["a", "b"], "x.y": {"z": 1}}}
    assert field_value(record, "alert.signature") == "flat"
    assert field_value(record, "rule.id") == "5710"
    assert field_value(record, "rule.x.y.z") == 1
    assert field_value(record, "rule.nope") is None
    assert field_text(field_value(record, "rule.groups")) == "a|b"
    assert field_text(True) == "true" and field_text(None) == ""


# --- CSV: the generic loader and bad input ---------------------------------------------------


CSV = "ts,host,kind,user,is_attack\n1700000000,h1,login,alice,0\n1700000060,h2,scan,bob,yes\n"
CSV_CFG = {"format": "csv", "columns": {"time": "ts", "entity": "host", "type": "kind"},
           "attributes": ["user"], "labels": {"attack": "is_attack"}}


def test_csv_column_mapping_and_labels(tmp_path):
    table = load_alerts(CSV_CFG, write(tmp_path / "a.csv", CSV))
    assert table.alerts["entity"].tolist() == ["h1", "h2"]
    assert table.label("attack").tolist() == [0, 1]
    assert table.alerts["time"].iloc[0] == pd.Timestamp(1_700_000_000, unit="s", tz="UTC")
    negative = {**CSV_CFG, "attributes": [], "labels": {"attack": {"column": "user", "negative": "alice"}}}
    assert load_alerts(negative, str(tmp_path / "a.csv")).label("attack").tolist() == [0, 1]


def test_csv_unknown_label_value(tmp_path):
    path = write(tmp_path / "a.csv", CSV.replace("yes", "maybe"))
    with pytest.raises(DataError, match=r"a.csv:3: label 'maybe' .*data.labels.attack=\{column: is_attack"):
        load_alerts(CSV_CFG, path)


def test_hydra_style_override_of_shipped_config(tmp_path):
    cfg = OmegaConf.merge(OmegaConf.load(CONF / "csv.yaml"), OmegaConf.from_dotlist(
        ["columns.time=ts", "columns.entity=host", "columns.type=kind", "attributes=[user]"]))
    table = load_alerts(cfg, write(tmp_path / "a.csv", CSV))
    assert table.attributes == ["user"] and table.labels is None


def test_malformed_lines_are_rejected_with_line_numbers(tmp_path):
    text = (
        'time,entity,type,note\n'
        '1700000000,h1,a,"quoted, comma"\n'
        '\n'
        '1700000001,h1,b,x,EXTRA\n'
        '1700000002,h2,c,"two\nlines"\n'
        '1700000003,h2\n'
        '1700000004,h3,d,\n'
    )
    path = write(tmp_path / "m.csv", text)
    table = load_alerts({"format": "csv", "attributes": ["note"]}, path)
    assert_accounted(table, 5)
    assert table.alerts["note"].tolist() == ["quoted, comma", "two\nlines", "(missing)"]
    assert table.alerts["source"].tolist() == ["m.csv:2", "m.csv:5", "m.csv:8"]
    assert table.rejected["source"].tolist() == ["m.csv:4", "m.csv:7"]
    assert table.rejected["reason"].tolist() == ["expected 4 fields, found 5", "expected 4 fields, found 2"]
    assert table.rejected["raw"].iloc[1] == "1700000003,h2"
    fast, slow = read_csv_rows(text.encode(), path), _slow(text.encode(), path, ",")
    assert fast.frame.equals(slow.frame) and fast.parsed == slow.parsed


def test_odd_quoting_falls_back_to_the_csv_module(tmp_path):
    text = 'time,entity,type\n1700000000,h"1,a\n1700000001,h2,b\n'
    table = load_alerts({"format": "csv"}, write(tmp_path / "q.csv", text))
    assert table.alerts["entity"].tolist() == ['h"1', "h2"]


def test_unparsable_and_mixed_unit_times(tmp_path):
    text = "time,entity,type\n1700000000,h,a\n1700000000500,h,b\nnot-a-time,h,c\n2023-11-14T22:13:20Z,h,d\n"
    path = write(tmp_path / "t.csv", text)
    table = load_alerts({"format": "csv"}, path)
    assert_accounted(table, 4)
    base = pd.Timestamp(1_700_000_000, unit="s", tz="UTC")
    assert table.alerts["time"].tolist() == [base, base + pd.Timedelta(milliseconds=500), base]
    assert table.rejected["source"].tolist() == ["t.csv:4"]
    assert "unparsable or out-of-range time" in table.rejected["reason"].iloc[0]
    seconds = load_alerts({"format": "csv", "time_unit": "s"}, path)
    assert seconds.rejected["source"].tolist() == ["t.csv:3", "t.csv:4", "t.csv:5"]


def test_non_utf8_bytes_are_replaced(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("time,entity,type\n1700000000,café,a\n".encode("latin-1"))
    table = load_alerts({"format": "csv"}, str(path))
    assert table.alerts["entity"].iloc[0] == "caf\ufffd"


def test_folder_loads_files_as_one_table(tmp_path):
    write(tmp_path / "b.csv", "time,entity,type\n1700000100,h,x\n1700000101,h\n")
    write(tmp_path / "a.csv", "time,entity,type\n1700000000,h,x\n")
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(b"time,entity,type\n1700000050,g,y\n"))
    write(tmp_path / "notes.txt", "ignored")
    table = load_alerts({"format": "csv"}, tmp_path)
    assert_accounted(table, 4)
    assert table.alerts["source"].tolist() == ["a.csv:2", "a.csv.gz:2", "b.csv:2"]
    assert table.rejected["source"].tolist() == ["b.csv:3"]
    assert table.source == str(tmp_path)


def test_folder_file_whose_rows_are_all_rejected_does_not_stop_the_others(tmp_path):
    """A rotated eve.json of only flow and stats events has no alerts; its lines are rejected and
    the folder's other files are ranked (it stopped the whole load with 'no usable alerts')."""
    alert = {"timestamp": "2024-05-01T08:00:00Z", "event_type": "alert", "dest_ip": "10.0.0.5",
             "alert": {"signature": "ET SCAN"}}
    write(tmp_path / "eve.1.json", json.dumps(alert) + "\n")
    write(tmp_path / "eve.2.json", json.dumps({**alert, "event_type": "flow"}) + "\n" + '{"event_type": "stats"}\n')
    table = load_alerts({"format": "suricata"}, tmp_path)
    assert_accounted(table, 3)
    assert table.rejected["source"].tolist() == ["eve.2.json:1", "eve.2.json:2"]
    write(tmp_path / "eve.1.json", json.dumps({**alert, "event_type": "dns"}) + "\n")
    with pytest.raises(DataError, match=rf"^{tmp_path.name}: no usable alerts \(3 rejected, first reason: not an alert"):
        load_alerts({"format": "suricata"}, tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"e.csv: empty file"),
        ("\n  \n", r"e.csv: empty file"),
        ("time,entity,type\n", r"e.csv: header only"),
        ("time,host,type\n1700000000,h,a\n", r"e.csv:1: missing column\(s\) entity; present: time, host"),
        ("time;entity;type\n1700000000;h;a\n", r"missing column\(s\) entity, time, type.*data.delimiter=';'"),
        ("sep=;\ntime;entity;type\n1700000000;h;a\n", r"e.csv:1: .*'sep=;' is the delimiter line Excel writes: "
         r"delete it and set data.delimiter=';'$"),
        ("time,entity,type\nnever,h,a\n", r"e.csv: no usable alerts"),
    ],
)
def test_bad_csv_is_one_clear_error(tmp_path, text, message):
    path = write(tmp_path / "e.csv", text)
    with pytest.raises(DataError, match=message) as err:
        load_alerts({"format": "csv"}, path)
    assert "\n" not in str(err.value)


def test_truncated_gzip(tmp_path):
    data = gzip.compress(("time,entity,type\n" + "1700000000,h,a\n" * 2000).encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    for fmt in ("csv", "ait_ads", "wazuh"):
        with pytest.raises(DataError, match=r"cut.csv.gz: truncated or corrupt gzip"):
            load_alerts({"format": fmt}, str(path))


def test_config_errors(tmp_path):
    path = write(tmp_path / "a.csv", CSV)
    with pytest.raises(DataError, match=r"data.colums is not an option of data format csv; valid: columns"):
        load_alerts({**CSV_CFG, "colums": {}}, path)
    with pytest.raises(DataError, match=r"data.columns.host is not known; valid keys: time, entity, type"):
        load_alerts({"format": "csv", "columns": {"host": "h"}}, path)
    with pytest.raises(DataError, match=r"data.format='xml' is not known; valid formats: csv, parquet"):
        load_alerts({"format": "xml"}, path)
    with pytest.raises(DataError, match=r"data.path=nope.csv: no such file or folder.*data.path="):
        load_alerts({"format": "csv"}, "nope.csv")
    with pytest.raises(DataError, match=r"data.path is not set"):
        load_alerts({"format": "wazuh"}, None)
    with pytest.raises(DataError, match=r"'time' is a reserved column name"):
        load_alerts({**CSV_CFG, "attributes": {"time": "user"}}, path)
    with pytest.raises(DataError, match=r"data.time_unit='h' is not known"):
        load_alerts({**CSV_CFG, "time_unit": "h"}, path)


def test_parquet(tmp_path):
    path = tmp_path / "a.parquet"
    frame = pd.DataFrame({"time": pd.to_datetime([1_700_000_000, 1_700_000_060], unit="s"),
                          "entity": ["h1", "h2"], "type": ["a", "b"], "bad": [0, 1]})
    frame.to_parquet(path)
    table = load_alerts({"format": "parquet", "labels": {"attack": "bad"}}, str(path))
    assert table.label("attack").tolist() == [0, 1]
    assert table.alerts["time"].iloc[1] == pd.Timestamp(1_700_000_060, unit="s", tz="UTC")


def test_parquet_row_with_a_null_entity_is_rejected_not_a_crash(tmp_path):
    """A null (not an empty string) in a Parquet column: the row is rejected, its raw text shows
    the null as an empty field (pandas 3 keeps it missing under astype(str), which broke the join)."""
    path = tmp_path / "a.parquet"
    pd.DataFrame({"time": [1_700_000_000, 1_700_000_060], "entity": ["h1", None], "type": ["a", "b"],
                  "user": [None, "u"]}).to_parquet(path)
    table = load_alerts({"format": "parquet", "attributes": ["user"]}, str(path))
    assert table.alerts["entity"].tolist() == ["h1"] and table.alerts["user"].tolist() == ["(missing)"]
    assert table.rejected[["alert_id", "reason", "raw"]].values.tolist() == [[1, "empty entity column 'entity'", "1700000060,,b,u"]]


def test_parquet_lists_structs_and_binary_are_text_as_in_the_json_formats(tmp_path):
    """A list<string> column (rule groups), a struct and binary bytes: TypeError (unhashable
    numpy.ndarray, dict) and UnicodeDecodeError tracebacks before."""
    path = tmp_path / "nested.parquet"
    pd.DataFrame({"time": [1_700_000_000, 1_700_000_060], "entity": [b"h\xff", b"h2"], "type": ["a", "b"],
                  "groups": [["syslog", "sshd"], []], "geo": [{"cc": "AT", "asn": "64500"}, None]}).to_parquet(path)
    table = load_alerts({"format": "parquet", "attributes": ["groups", "geo"]}, str(path))
    assert table.alerts[["entity", "groups", "geo"]].values.tolist() == [
        ["h\ufffd", "syslog|sshd", '{"cc":"AT","asn":"64500"}'], ["h2", "(missing)", "(missing)"]]


# --- configs -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet", "ait_ads", "cptc", "wazuh", "suricata"])
def test_config_matches_loader(fmt):
    cfg = config(fmt)
    assert cfg["format"] == fmt and cfg["path"] is None and cfg["history"] is None
    params = inspect.signature(loader(fmt)).parameters
    options = {k: v for k, v in cfg.items() if k not in ("format", "path", "history")}
    assert list(options) == list(params)[1:]
    for key in ("time_unit", "delimiter", "attributes"):
        default = params[key].default if key in params else None
        if default not in (None, inspect.Parameter.empty):
            assert options[key] == (list(default) if isinstance(default, tuple) else default)
    assert FORMATS[fmt][1], "file formats load folders"
