"""Safe outputs: files are replaced whole or not at all, reruns into one folder leave no stale
or temporary files, and the attack graph is valid XML whatever the alert text holds."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pandas as pd
import pyarrow.csv as pa_csv
import pytest

from car.data import load_alerts
from car.models.baselines import Rarity
from car.outputs.files import write_csv, write_graphml, write_json
from car.pipeline import OUTPUT_FILES, write_outputs
from reliability_helpers import write


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def fail_midway(exc: type[BaseException]):
    """A writer that starts writing its target for real, then raises ``exc``."""
    def writer(obj, path, *args, **kwargs):
        Path(path).write_text("partial,out")
        raise exc("disk full")
    return writer


@pytest.mark.parametrize("exc", [OSError, KeyboardInterrupt])
def test_failed_csv_write_keeps_the_previous_file_and_no_temp_file(tmp_path, monkeypatch, exc):
    path = write_csv(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), tmp_path / "ranked_alerts.csv")
    before = path.read_bytes()
    monkeypatch.setattr(pa_csv, "write_csv", fail_midway(exc))
    with pytest.raises(exc):
        write_csv(pd.DataFrame({"a": [3]}), path)
    assert path.read_bytes() == before
    assert names(tmp_path) == ["ranked_alerts.csv"], "no temporary file may remain"


def test_failed_json_and_graphml_writes_keep_the_previous_files(tmp_path, monkeypatch):
    metrics = write_json({"ap": 0.5}, tmp_path / "metrics.json")
    graph = nx.DiGraph([("a", "b")])
    graphml = write_graphml(graph, tmp_path / "attack_graph.graphml")
    before = {p.name: p.read_bytes() for p in (metrics, graphml)}
    monkeypatch.setattr(nx, "write_graphml", fail_midway(OSError))
    with pytest.raises(OSError):
        write_graphml(nx.DiGraph([("c", "d")]), graphml)
    with pytest.raises(TypeError):  # not JSON: fails before anything reaches the file
        write_json({"ap": object()}, metrics)
    assert {p.name: p.read_bytes() for p in (metrics, graphml)} == before
    assert names(tmp_path) == ["attack_graph.graphml", "metrics.json"]
    assert json.loads(metrics.read_text()) == {"ap": 0.5}


def test_json_outputs_are_strict_json(tmp_path):
    """NaN and infinities are null: Python wrote Infinity, which JSON readers other than Python's refuse."""
    path = write_json({"ap": float("nan"), "ratio": float("inf"), "low": float("-inf"), "auc": 0.5}, tmp_path / "m.json")
    assert json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} is not JSON")) == {
        "ap": None, "ratio": None, "low": None, "auc": 0.5}


@pytest.fixture
def small(tmp_path):
    path = write(tmp_path / "in.csv", "time,entity,type,bad\n1700000000,h,a,0\n1700000060,h,b,1\nnever,h,c,0\n")
    table = load_alerts({"format": "csv", "labels": {"attack": "bad"}}, path)
    return table, Rarity().fit(table).rank(table)


def test_rerun_into_the_same_folder_replaces_every_output(tmp_path, small):
    table, ranking = small
    out = tmp_path / "run"
    ranking.graph = nx.DiGraph([("h | a", "h | b")])
    first = write_outputs(out, table, ranking, history=table, metrics={"attack/raw/ap": 1.0})
    assert sorted(p.name for p in first) == sorted(OUTPUT_FILES)
    (out / "train.log").write_text("Hydra's log: not ours, kept")
    ranking.graph = None
    second = write_outputs(out, table, ranking, history=None, metrics={})
    assert names(out) == sorted([p.name for p in second] + ["train.log"]), "stale outputs of the first run remain"
    ranked = pd.read_csv(out / "ranked_alerts.csv")
    assert ranked["alert_id"].tolist() == [0, 1] and pd.read_csv(out / "rejected_alerts.csv")["alert_id"].tolist() == [2]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_graph_text_that_xml_forbids_is_replaced(tmp_path):
    graph = nx.DiGraph()
    graph.add_edge("web\x1b[31m | scan\x00", "db | exfil\x07", first_time="2024\x0b", count=2)
    graph.nodes["db | exfil\x07"]["entity"] = "db\x01"
    path = write_graphml(graph, tmp_path / "attack_graph.graphml")
    back = nx.read_graphml(path)  # a parse error before: control characters are not XML
    assert sorted(back.nodes) == ["db | exfil\ufffd", "web\ufffd[31m | scan\ufffd"]
    assert back.nodes["db | exfil\ufffd"]["entity"] == "db\ufffd"
    assert back.edges["web\ufffd[31m | scan\ufffd", "db | exfil\ufffd"] == {"first_time": "2024\ufffd", "count": 2}
    assert "web\x1b[31m | scan\x00" in graph, "the model's graph is not modified"
