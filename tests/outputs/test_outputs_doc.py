"""docs/outputs.md names every column, metrics.json key and graph attribute a run writes, and
every alert metric it lists is written: a new output column or metric needs its line there."""

from __future__ import annotations

import json
import re

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from car.data import load_alerts
from car.eval.patterns import evaluate_patterns
from car.models.base import Ranking
from conftest import REPO
from outputs_helpers import car_run

DOC = (REPO / "docs" / "outputs.md").read_text(encoding="utf-8")
NO_OCCURRENCE = Ranking(np.zeros(1), pattern_alerts=np.zeros((0, 2), dtype=np.int64))  # a model with patterns
AIT_ADS_ROWS = "time,name,ip,host,short,time_label,event_label\n1642723347,Wazuh: x,10.0.0.1,mail,W-Sys-Cav,false_positive,-\n"


def section(title: str) -> str:
    """The text of the ``## <title>`` section of outputs.md."""
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", DOC, flags=re.M | re.S)
    assert found, f"docs/outputs.md has no section '## {title}'"
    return found.group(1)


def table_names(text: str, cell: int = 0) -> set[str]:
    """The backticked names in cell ``cell`` of the table rows of ``text``."""
    cells = [row.split("|")[cell + 1] for row in text.splitlines() if row.startswith("| ")]
    return {name for c in cells for name in re.findall(r"`([^`]+)`", c)}


def documented_column(name: str, text: str, attributes: list[str], kinds: list[str]) -> bool:
    """Whether column ``name`` has its row in a section's table (an attribute, a label kind or
    an annotation by the generic row that names it)."""
    names = table_names(text)
    generic = {f"label_{k}": "label_<kind>" for k in kinds} | {f"precision_{k}": "precision_<kind>" for k in kinds}
    if name in attributes:
        return "| attribute columns |" in text
    annotations = next((row for row in text.splitlines() if row.startswith("| annotations |")), "")
    return name in names or generic.get(name) in names or f"`{name}`" in annotations


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return car_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def ait_ads(tmp_path_factory):
    path = tmp_path_factory.mktemp("ait_ads") / "one_alerts.csv"
    path.write_text(AIT_ADS_ROWS)
    return load_alerts({"format": "ait_ads"}, path)


@pytest.mark.parametrize("name", ["ranked_alerts.csv", "ranked_patterns.csv", "rejected_alerts.csv"])
def test_every_csv_column_of_a_run_has_its_row(run, name):
    text = section("rejected_alerts.csv and rejected_history.csv" if name.startswith("rejected") else name)
    columns = pd.read_csv(run.out / name, nrows=0).columns
    missing = [c for c in columns if not documented_column(c, text, run.table.attributes, run.table.label_kinds)]
    assert not missing, f"docs/outputs.md, {name}: no row for {missing}"


def test_ait_ads_label_and_annotation_columns_have_their_rows(ait_ads):
    text = section("ranked_alerts.csv")
    missing = [c for c in ait_ads.labels.columns if not documented_column(c, text, [], ait_ads.label_kinds)]
    assert ait_ads.label_kinds == ["strict", "window"] and not missing, missing


def test_every_metrics_key_is_documented_and_every_documented_alert_metric_written(run, ait_ads):
    text = section("metrics.json")
    metrics = json.loads((run.out / "metrics.json").read_text())
    alert_keys = [k.split("/") for k in metrics if not k.startswith("patterns/")]
    assert {kind for kind, _, _ in alert_keys} == set(run.table.label_kinds)
    assert {level for _, level, _ in alert_keys} == {"raw", "grouped"} and "`raw`" in text and "`grouped`" in text
    assert {metric for _, _, metric in alert_keys} == table_names(text), "metrics.json's table lists other metrics"
    pattern_keys = [k for k in metrics if k.startswith("patterns/")] + list(evaluate_patterns(ait_ads, NO_OCCURRENCE))
    assert pattern_keys, "the simulator's run and the AIT-ADS evaluation give pattern metrics"
    for key in pattern_keys:
        assert key.endswith("_at_5") and f"`{key.removeprefix('patterns/').removesuffix('_at_5')}`" in text, key


def test_every_graph_attribute_is_documented(run):
    graph = nx.read_graphml(run.out / "attack_graph.graphml")
    names = table_names(section("attack_graph.graphml"), cell=1)
    used = {k for _, d in graph.nodes(data=True) for k in d} | {k for _, _, d in graph.edges(data=True) for k in d}
    assert used and used <= names, used - names
