"""Pictures of a run: valid PNGs, a precision-recall curve whose area is the metrics' AP, attack
scenarios of the top patterns, and alert text drawn as text."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
from dataclasses import replace

import matplotlib
import matplotlib.image
import networkx as nx
import numpy as np
import pandas as pd
import pytest

from car.data import load_alerts
from car.eval.metrics import average_precision
from car.models.base import Ranking
from car.models.baselines import Rarity
from car.outputs.pictures import (
    ATTACK_PICTURE,
    ENTITY_NAME,
    HISTOGRAM_PICTURE,
    MAX_LANES,
    PICTURE_FILES,
    PR_PICTURE,
    STEP_NAME,
    STYLE,
    TOP_PATTERNS,
    attack_figure,
    histogram_figure,
    png,
    precision_recall_figure,
    render_pictures,
)
from outputs_helpers import car_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return car_run(tmp_path_factory.getbasetemp())


def test_every_picture_is_a_valid_nonblank_png(run):
    assert {p.name for p in run.files} >= set(PICTURE_FILES)
    for name in PICTURE_FILES:
        data = (run.out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, name
        pixels = matplotlib.image.imread(io.BytesIO(data), format="png")
        assert pixels.shape[0] >= 300 and pixels.shape[1] >= 500 and pixels.shape[2] in (3, 4), name
        assert pixels[..., :3].std() > 0.05, f"{name} is blank"


def test_precision_recall_curve_has_the_area_and_legend_of_metrics_ap(run):
    figure = precision_recall_figure(run.table, run.ranking.scores)
    (ax,) = figure.axes
    curve = next(line for line in ax.lines if line.get_label().startswith("attack"))
    recall, precision = curve.get_xdata(), curve.get_ydata()
    assert curve.get_drawstyle() == "steps-pre" and recall[0] == 0 and recall[-1] == pytest.approx(1.0)
    area = float(np.sum(np.diff(recall) * precision[1:]))
    ap = json.loads((run.out / "metrics.json").read_text())["attack/raw/ap"]
    assert area == pytest.approx(ap, abs=1e-12)
    assert area == pytest.approx(average_precision(run.ranking.scores, run.table.label("attack")), abs=1e-12)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"attack: AP {ap:.3f}"]


def test_histogram_overlays_attacks_on_benign_alerts_with_their_counts(run):
    figure = histogram_figure(run.table, run.ranking.scores)
    (ax,) = figure.axes
    attacks = int(run.table.label("attack").sum())
    assert ax.get_yscale() == "log"
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == [
        f"attack ({attacks:,})", f"benign ({len(run.table) - attacks:,})"]


def test_attack_picture_draws_the_top_patterns_on_their_steps(run):
    patterns = run.ranking.patterns
    with matplotlib.rc_context(STYLE):
        figure = attack_figure(run.ranking.graph, patterns)
    assert len(figure.axes) == min(TOP_PATTERNS, len(patterns)) == 4
    for ax, pattern in zip(figure.axes, patterns.itertuples()):
        title = ax.get_title(loc="left").split("\n")
        assert title[0].startswith(f"pattern {pattern.pattern_id}: {pattern.occurrences} occurrences")
        assert title[1] == pattern.steps
        columns = [t.get_text().replace("\n", "") for t in ax.texts if t.get_gid() == STEP_NAME]
        assert columns == pattern.steps.split(" > ")
        entities = [t.get_text() for t in ax.texts if t.get_gid() == ENTITY_NAME]
        assert 0 < len(entities) <= MAX_LANES and set(entities) <= set(pattern.entities.split(";"))
        assert len(ax.patches) > 0, "transitions are drawn as arrows"
    assert png(figure) == (run.out / ATTACK_PICTURE).read_bytes(), "the same ranking must give the same bytes"


RENDER = """
import pickle, sys
import matplotlib
from car.outputs.pictures import STYLE, attack_figure, png
graph, patterns = pickle.loads(open(sys.argv[1], "rb").read())
with matplotlib.rc_context(STYLE):
    sys.stdout.buffer.write(png(attack_figure(graph, patterns)))
"""


def crossing_graph() -> tuple[nx.DiGraph, pd.DataFrame]:
    """Pattern 1: three steps on six entities, with arrows both ways and loops that cross; pattern
    2 on twenty other entities, so that pattern 1 holds few of the graph's nodes."""
    graph, types = nx.DiGraph(), ["scan", "exploit", "beacon"]
    for e in range(26):
        for t in types:
            graph.add_node(f"host-{e:02d} | {t}", entity=f"host-{e:02d}", type=t, alerts=e + 1)
    for e in range(6):
        nodes = [f"host-{e:02d} | {t}" for t in types]
        for i, (u, v) in enumerate([(0, 1), (1, 2), (1, 0), (2, 0), (0, 0), (2, 2), (0, 2)]):
            graph.add_edge(nodes[u], nodes[v], count=1 + (e * 7 + i) % 9, patterns="1")
    for e in range(6, 26):
        graph.add_edge(f"host-{e:02d} | scan", f"host-{e:02d} | exploit", count=1, patterns="2")
    patterns = pd.DataFrame({"pattern_id": [1], "steps": ["scan > exploit > beacon"], "occurrences": [40],
                             "alert_count": [90], "score": [1.0]})
    return graph, patterns


def test_attack_picture_bytes_do_not_depend_on_the_hash_seed(tmp_path):
    """A networkx view of a few nodes iterates a set of them (string hash order), which changed the
    drawing order of crossing arrows, and so the PNG, from one Python process to the next."""
    graph_file = tmp_path / "graph.pickle"  # written here, read back by this test's own subprocesses
    graph_file.write_bytes(pickle.dumps(crossing_graph()))
    pictures = [
        subprocess.run([sys.executable, "-c", RENDER, str(graph_file)], capture_output=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2", "3")
    ]
    assert pictures[0][:8] == PNG_MAGIC
    assert pictures[0] == pictures[1] == pictures[2]


def test_models_without_graph_or_labels_get_the_pictures_they_can_have():
    table = load_alerts({"format": "enterprise_sim", "n_alerts": 2000, "seed": 2}, None)
    ranking = Rarity().fit(table.unlabeled()).rank(table.unlabeled())
    assert list(render_pictures(table, ranking)) == [HISTOGRAM_PICTURE, PR_PICTURE]
    assert list(render_pictures(table.unlabeled(), ranking)) == [HISTOGRAM_PICTURE]
    assert precision_recall_figure(replace(table, labels=table.labels.assign(label_attack=0)), ranking.scores) is None


def test_alert_text_with_dollars_is_drawn_as_text_not_math():
    graph = nx.DiGraph()
    graph.add_node("ADMIN$ | $\\nocommand{x}$", entity="ADMIN$", type="$\\nocommand{x}$", alerts=2)
    graph.add_node("ADMIN$ | b", entity="ADMIN$", type="b", alerts=1)
    graph.add_edge("ADMIN$ | $\\nocommand{x}$", "ADMIN$ | b", count=2, patterns="1")
    patterns = pd.DataFrame({"pattern_id": [1], "steps": ["$\\nocommand{x}$ > b"], "occurrences": [2],
                             "alert_count": [3], "score": [1.0]})
    figure = attack_figure(graph, patterns)
    assert png(figure)[:8] == PNG_MAGIC  # mathtext would fail on the unknown command
    names = [t.get_text() for t in figure.axes[0].texts if t.get_gid() in (STEP_NAME, ENTITY_NAME)]
    assert names == ["\\$\\nocommand{x}\\$", "b", "ADMIN\\$"]


def test_long_names_are_cut_to_stay_inside_the_attack_picture():
    entity, step = "WIDE-NAME-" * 6, "a step " * 30
    graph = nx.DiGraph()
    graph.add_node("x", entity=entity, type=step, alerts=2)
    graph.add_node("y", entity=entity, type="b", alerts=1)
    graph.add_edge("x", "y", count=2, patterns="1")
    patterns = pd.DataFrame({"pattern_id": [1], "steps": [f"{step} > b"], "occurrences": [2],
                             "alert_count": [3], "score": [1.0]})
    with matplotlib.rc_context(STYLE):
        figure = attack_figure(graph, patterns)
        png(figure)
    renderer = figure.canvas.get_renderer()
    names = [t for t in figure.axes[0].texts if t.get_gid() in (STEP_NAME, ENTITY_NAME)]
    assert [t.get_text().count("\n") for t in names] == [2, 0, 0], "a step name takes at most three lines"
    assert names[2].get_text().endswith("\u2026") and entity.startswith(names[2].get_text()[:-1])
    for name in names:
        box = name.get_window_extent(renderer)
        assert 0 <= box.x0 and box.x1 <= figure.bbox.width and 0 <= box.y0, f"{name.get_text()!r} leaves the picture"


def test_counts_of_a_transition_and_its_way_back_sit_apart_on_their_curves():
    graph = nx.DiGraph()
    graph.add_node("a", entity="host", type="a", alerts=9)
    graph.add_node("b", entity="host", type="b", alerts=5)
    graph.add_edge("a", "b", count=11, patterns="1")
    graph.add_edge("b", "a", count=10, patterns="1")
    patterns = pd.DataFrame({"pattern_id": [1], "steps": ["a > b > a"], "occurrences": [5],
                             "alert_count": [14], "score": [1.0]})
    with matplotlib.rc_context(STYLE):
        figure = attack_figure(graph, patterns)
        png(figure)
    renderer = figure.canvas.get_renderer()
    ax = figure.axes[0]
    labels = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts if t.get_text() in ("10", "11")}
    arrows = [p.get_path().transformed(p.get_transform()).get_extents() for p in ax.patches]
    assert not labels["10"].overlaps(labels["11"]), "the two counts must not cover each other"
    for box in labels.values():
        assert any(box.overlaps(arrow) for arrow in arrows), "a count sits on its curve"


def test_no_pattern_gives_a_picture_that_says_so():
    empty = Ranking(scores=np.zeros(1), graph=nx.DiGraph())
    figure = attack_figure(empty.graph, empty.patterns)
    assert [t.get_text() for t in figure.axes[0].texts] == ["no candidate attack pattern found"]
