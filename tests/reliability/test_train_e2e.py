"""Bad input end to end: ``python train.py`` in a subprocess (a few representative cases; each
costs an interpreter start) and ``car.pipeline.run`` in-process for tiny inputs."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from car.errors import CARError
from car.pipeline import run
from reliability_helpers import CORPUS, REPO, assert_clean_failure, read_output, run_train, write

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def assert_formula_safe(frame: pd.DataFrame) -> None:
    """No text cell a spreadsheet would run: each starts with a formula character only if it is a number."""
    for column in frame.columns:
        cells = frame[column]
        risky = cells[cells.str.startswith(FORMULA_START) & pd.to_numeric(cells, errors="coerce").isna()]
        assert risky.empty, f"{column}: {risky.tolist()}"


def assert_no_temp_files(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# --- subprocess: train.py -----------------------------------------------------------------------


def test_messy_csv_is_ranked_with_bad_rows_rejected_and_formulas_neutralised(tmp_path):
    path = shutil.copy(CORPUS / "messy_alerts.csv", tmp_path / "messy_alerts.csv")
    out = tmp_path / "run"
    out.mkdir()
    (out / "ranked_alerts.csv").write_text("stale,rows\n" * 1000)  # a previous run's files
    (out / "attack_graph.graphml").write_text("<stale/>")
    proc = run_train(
        out, "data=csv", f"data.path={path}", "model=rarity", "data.columns.time=ts", "data.columns.entity=host",
        "data.columns.type=rule", "data.attributes=[user,cmd]", "+data.labels.attack=verdict",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "messy_alerts.csv: bytes that are not UTF-8" in proc.stdout  # Hydra logs to stdout
    ranked, rejected = pd.read_csv(out / "ranked_alerts.csv"), pd.read_csv(out / "rejected_alerts.csv")
    assert sorted(ranked["alert_id"].tolist() + rejected["alert_id"].tolist()) == list(range(19))
    assert sorted(rejected["alert_id"]) == [3, 4, 5, 6, 7, 12, 13, 14, 15, 16]
    for frame, numeric in ((ranked, ["rank", "alert_id", "score", "label_attack"]), (rejected, ["alert_id"])):
        for column in numeric:
            assert pd.api.types.is_numeric_dtype(frame[column]), column
    text = read_output(out / "ranked_alerts.csv").set_index("alert_id")
    assert_formula_safe(text)
    assert text.loc["2", ["user", "cmd"]].tolist() == ["'=cmd|' /C calc'!A0", "'=HYPERLINK(\"http://example.com\",\"x\")"]
    assert text.loc["8", ["entity", "type", "user", "cmd"]].tolist() == ["'+web-3", "'@SUM(A1)", "'-2+3", "multi\nline"]
    assert text.loc["17", "cmd"] == "'+SUM(9)"
    assert text.loc["18", ["user", "cmd"]].tolist() == ["-5", "+7"], "numbers as text stay as they are"
    raw = read_output(out / "rejected_alerts.csv").set_index("alert_id")
    assert_formula_safe(raw)
    assert raw.loc[["13", "14", "15", "16"], "raw"].tolist() == ["'=1+1,web-1", "'@SUM(1),x", "'-2+3,x", "'\t=1+1,x"]
    assert raw.loc["6", ["source", "reason"]].tolist() == ["messy_alerts.csv:8", "expected 6 fields, found 4"]
    assert json.loads((out / "metrics.json").read_text())["attack/raw/ap"] > 0
    assert not (out / "attack_graph.graphml").exists(), "rarity draws no graph: the stale one must go"
    assert_no_temp_files(out)


_GZ = gzip.compress(("time,entity,type\n" + "".join(f"{1700000000 + i},h{i % 5},t{i % 9}\n" for i in range(2000))).encode())


@pytest.mark.parametrize(
    ("overrides", "code", "needles"),
    [
        (["data=csv", "data.path={cut}"], 2, ["cut.csv.gz: truncated or corrupt gzip", "compress the file again"]),
        (["data=csv", "data.path={cut}", "data.colums.time=x"], 1,
         ["Could not override 'data.colums.time'", "To append to your config use +data.colums.time=x"]),
    ],
    ids=["truncated-gzip", "unknown-key"],
)
def test_bad_input_or_config_fails_in_one_clear_line(tmp_path, overrides, code, needles):
    cut = write(tmp_path / "cut.csv.gz", _GZ[: len(_GZ) // 2])
    proc = run_train(tmp_path / "run", *(o.format(cut=cut) for o in overrides), "model=rarity")
    stderr = assert_clean_failure(proc, code, *needles)
    if code == 2:  # a CARError: exactly one ERROR line, naming the problem
        errors = [line for line in (proc.stdout + stderr).splitlines() if "ERROR" in line]
        assert len(errors) == 1 and needles[0] in errors[0], proc.stdout + stderr
    assert not (tmp_path / "run" / "ranked_alerts.csv").exists()


def test_car_on_a_single_alert(tmp_path):
    path = write(tmp_path / "one.csv", "time,entity,type,user\n1700000000,=cmd|' /C calc'!A0,@SUM(A1),-alice\n")
    out = tmp_path / "run"
    proc = run_train(out, "data=csv", f"data.path={path}", "data.attributes=[user]", "model=car", "trainer.max_epochs=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    ranked = read_output(out / "ranked_alerts.csv")
    assert ranked[["rank", "alert_id", "entity", "type", "user"]].values.tolist() == [
        ["1", "0", "'=cmd|' /C calc'!A0", "'@SUM(A1)", "'-alice"]]
    assert pd.read_csv(out / "ranked_patterns.csv").empty
    assert pd.read_csv(out / "rejected_alerts.csv").empty
    assert_no_temp_files(out)


# --- in-process: car.pipeline.run on tiny inputs ------------------------------------------------


def run_in_process(out: Path, *overrides: str) -> Path:
    """``car.pipeline.run`` with the composed config (no MLflow, short training); returns ``out``."""
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=[*overrides, "logger=none", "trainer.enable_progress_bar=false"])
    run(cfg, out)
    return out


CAR_FAST = ("model=car", "trainer.max_epochs=2")


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("single-entity", "".join(f"{1700000000 + 60 * i},web-1,{t}\n" for i, t in enumerate("abcabcab"))),
        ("one-tuple", "1700000000,h,a\n" * 4),  # one distinct (entity, type): one run, one tuple
        ("two-entities", "1700000000,h1,a\n1700000060,h2,b\n"),
        ("repeated-pattern", "".join(f"{1700000000 + 60 * i},h{i // 3},{'abc'[i % 3]}\n" for i in range(30))),
    ],
    ids=["single-entity", "one-tuple", "two-entities", "repeated-pattern"],
)
def test_car_on_tiny_inputs(tmp_path, name, rows):
    path = write(tmp_path / f"{name}.csv", "time,entity,type\n" + rows + "never,h,a\n")
    out = run_in_process(tmp_path / "run", "data=csv", f"data.path={path}", *CAR_FAST)
    ranked, rejected = pd.read_csv(out / "ranked_alerts.csv"), pd.read_csv(out / "rejected_alerts.csv")
    n = rows.count("\n")
    assert sorted(ranked["alert_id"].tolist() + rejected["alert_id"].tolist()) == list(range(n + 1))
    assert ranked["score"].notna().all() and ranked["score"].is_monotonic_decreasing
    patterns = pd.read_csv(out / "ranked_patterns.csv")
    assert list(patterns.columns[:3]) == ["rank", "pattern_id", "score"]


@pytest.mark.parametrize("model", ["hpyp", "ngram", "ape", "rarity"])
def test_other_models_on_a_single_alert(tmp_path, model):
    path = write(tmp_path / "one.csv", "time,entity,type\n1700000000,h,a\n")
    out = run_in_process(tmp_path / "run", "data=csv", f"data.path={path}", f"model={model}", "trainer.max_epochs=2")
    assert pd.read_csv(out / "ranked_alerts.csv")["alert_id"].tolist() == [0]


def test_car_with_a_one_alert_history(tmp_path):
    path = write(tmp_path / "batch.csv", "time,entity,type\n1700000000,h,a\n1700000060,h,b\n")
    history = write(tmp_path / "history.csv", "time,entity,type\n1600000000,h,a\n")
    out = run_in_process(tmp_path / "run", "data=csv", f"data.path={path}", f"data.history={history}", *CAR_FAST)
    assert pd.read_csv(out / "ranked_alerts.csv")["alert_id"].tolist() in ([0, 1], [1, 0])
    assert (out / "rejected_history.csv").exists()


def test_history_that_is_the_batch_itself_is_a_config_error(tmp_path):
    """The same file twice (also through another spelling of its path) was learned from twice."""
    path = write(tmp_path / "batch.csv", "time,entity,type\n1700000000,h,a\n1700000060,h,b\n")
    with pytest.raises(CARError, match=r"data.history=.* is data.path itself"):
        run_in_process(tmp_path / "run", "data=csv", f"data.path={path}",
                       f"data.history={tmp_path}/../{tmp_path.name}/batch.csv", *CAR_FAST)


BATCH_ROWS = "1700000000,h,a,u\n1700000060,h,b,u\n1700000060,h,b,u\n"
HEADER = "time,entity,type,user\n"


def test_history_that_only_copies_the_batch_is_a_config_error(tmp_path):
    """A copy of the batch in another file adds nothing and was learned from twice, without a word."""
    path = write(tmp_path / "batch.csv", HEADER + BATCH_ROWS)
    history = write(tmp_path / "history.csv", HEADER + BATCH_ROWS)
    with pytest.raises(CARError, match=r"data.history=.*history.csv: every alert of it is in data.path, so it adds "
                                       r"nothing and they would be learned from twice"):
        run_in_process(tmp_path / "run", "data=csv", f"data.path={path}", f"data.history={history}",
                       "data.attributes=[user]", *CAR_FAST)


def test_history_that_spans_the_batch_learns_the_batch_once(tmp_path):
    """An export of the last weeks that includes the batch: its copies of the batch's alerts are
    dropped, so the run ranks as with the earlier alerts alone (it learned them twice before)."""
    path = write(tmp_path / "batch.csv", HEADER + BATCH_ROWS)
    earlier = "1600000000,h,a,u\n1600000060,h,c,u\n"
    spanning = write(tmp_path / "spanning.csv", HEADER + earlier + BATCH_ROWS)
    only_earlier = write(tmp_path / "earlier.csv", HEADER + earlier)
    outs = [run_in_process(tmp_path / name, "data=csv", f"data.path={path}", f"data.history={history}",
                           "data.attributes=[user]", *CAR_FAST)
            for name, history in (("spanning", spanning), ("earlier", only_earlier))]
    ranked = [(out / "ranked_alerts.csv").read_text() for out in outs]
    assert ranked[0] == ranked[1]


def test_labelled_batch_with_an_unlabeled_history(tmp_path):
    """History is unlabeled for CAR: its label columns may be missing. Other faults of the history
    file are still errors, and they name data.history, not data.path."""
    batch = write(tmp_path / "batch.csv", "time,entity,type,bad\n1700000000,h,a,0\n1700000060,h,b,1\n")
    history = write(tmp_path / "history.csv", "time,entity,type\n1600000000,h,a\n1600000060,h,c\n")
    labels = "+data.labels.attack=bad"
    out = run_in_process(tmp_path / "run", "data=csv", f"data.path={batch}", f"data.history={history}", labels, *CAR_FAST)
    assert json.loads((out / "metrics.json").read_text())["attack/raw/ap"] > 0
    for name, text, needle in [("nothing.csv", None, "data.history="), ("header.csv", "time,entity,type\n", "check data.history"),
                               ("times.csv", "time,entity,type\nnever,h,a\n", "no usable alerts")]:
        path = str(tmp_path / name) if text is None else write(tmp_path / name, text)
        with pytest.raises(CARError, match=needle) as err:
            run_in_process(tmp_path / name, "data=csv", f"data.path={batch}", f"data.history={path}", labels, *CAR_FAST)
        assert "data.path" not in str(err.value)


def test_json_text_with_cr_and_tab_formulas_is_neutralised(tmp_path):
    ok = {"timestamp": "2024-03-04T10:00:00Z", "agent": {"name": "@web-1"}, "rule": {"id": "-1+2", "description": "=1+1"}}
    lines = [ok, {**ok, "timestamp": "\r=cmd|'/c calc'!A0"}, {**ok, "timestamp": "\t+SUM(1)"}, {**ok, "timestamp": "-1"}]
    path = write(tmp_path / "alerts.json", "\n".join(json.dumps(r) for r in lines))
    out = run_in_process(tmp_path / "run", "data=wazuh", f"data.path={path}", "model=rarity")
    ranked, rejected = read_output(out / "ranked_alerts.csv"), read_output(out / "rejected_alerts.csv")
    assert_formula_safe(ranked)
    assert_formula_safe(rejected)
    assert ranked[["entity", "type", "description"]].values.tolist() == [["'@web-1", "'-1+2", "'=1+1"]]
    assert [r.split(",")[0] for r in rejected["raw"]] == ["'\r=cmd|'/c calc'!A0", "'\t+SUM(1)", "'-1"]


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["data.colums.time=x"], "Could not override 'data.colums.time'"),
        (["model.temporal.dept=3"], "Could not override 'model.temporal.dept'"),
        (["model=cart"], "Could not find 'model/cart'"),
    ],
)
def test_hydra_rejects_unknown_keys(overrides, needle):
    with pytest.raises(ConfigCompositionException, match=needle.replace("(", r"\(")):
        with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
            compose("train", overrides=overrides)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["+data.colums.time=x"], "data.colums is not an option of data format csv; valid: columns"),
        (["data.time_unit=h"], "data.time_unit='h' is not known"),
        (["data.format=xml"], "data.format='xml' is not known; valid formats: csv"),
        (["seed=abc"], "seed='abc' must be a whole number >= 0"),
        (["threads=0"], "threads=0 must be a whole number >= 1"),
        (["model._target_=nope.Model"], "model._target_=nope.Model cannot be imported"),
        (["model._target_=os.system"], "model._target_=os.system is not an AlertRanker"),
        (["model._target_=car.alerts.AlertTable"], "model._target_=car.alerts.AlertTable is not an AlertRanker"),
        (["model.counts_from=everything"], "model config car.models.baselines.Rarity: model.counts_from='everything'"),
    ],
)
def test_bad_config_values_are_one_line_errors(tmp_path, overrides, needle):
    path = write(tmp_path / "a.csv", "time,entity,type\n1700000000,h,a\n")
    with pytest.raises(CARError) as err:
        run_in_process(tmp_path / "run", "data=csv", f"data.path={path}", "model=rarity", *overrides)
    assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert not (tmp_path / "run" / "ranked_alerts.csv").exists()


def test_rarity_counts_from_history_without_history_is_a_config_error(tmp_path):
    path = write(tmp_path / "a.csv", "time,entity,type\n1700000000,h,a\n")
    with pytest.raises(CARError, match="model.counts_from=history needs data.history"):
        run_in_process(tmp_path / "run", "data=csv", f"data.path={path}", "model=rarity", "model.counts_from=history")
