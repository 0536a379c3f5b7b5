"""Pictures of a run as PNG: attack scenarios of the top patterns, score histogram, precision-recall.

Drawn on matplotlib's Agg canvas through ``Figure`` objects (no display, no pyplot state, the
caller's backend untouched). Text from the data is drawn as it is: a ``$`` in an alert type does
not start math. The same data gives the same bytes (fixed layout, no timestamp in the PNG).
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import matplotlib
import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imsave
from matplotlib.transforms import offset_copy

from car.alerts import AlertTable
from car.eval.metrics import average_precision, precision_recall_curve
from car.models.base import STEP_SEPARATOR, Ranking

ATTACK_PICTURE = "attack_patterns.png"
HISTOGRAM_PICTURE = "score_histogram.png"
PR_PICTURE = "precision_recall.png"
PICTURE_FILES = (ATTACK_PICTURE, HISTOGRAM_PICTURE, PR_PICTURE)
TOP_PATTERNS = 4  # patterns drawn in ATTACK_PICTURE
MAX_LANES = 6  # entities drawn per pattern: those with the most transitions
BINS = 50
DPI = 100
NODE_SIZE = 500
CURVE = 0.12  # arc3 bend of the arrows: back edges (a type repeated in the steps) curve apart from forward ones
ATTACK_COLOR, BENIGN_COLOR, NODE_COLOR = "#c0392b", "#7f8c8d", "#2c3e50"
WIDTH, MARGIN = 10.0, 0.2  # inches: attack picture, its left and right margins
LANE, ABOVE, BELOW = 0.55, 0.6, 0.75  # inches: per entity lane, above a panel (title), below (step names)
NAME_GAP, NAME_SIZE = 14, 8  # pixels between the lanes and the step and entity names; their font size
ENTITY_CHARS = 32  # longest entity name drawn whole
STEP_NAME, ENTITY_NAME = "step name", "entity name"  # gids of those texts
STYLE = {"font.size": 9, "axes.titlesize": 10}  # rc parameters the pictures are drawn with


def render_pictures(table: AlertTable, ranking: Ranking) -> dict[str, bytes]:
    """PNG bytes by file name, in ``PICTURE_FILES`` order: the attack scenarios when the model
    gives a graph, the histogram always, precision-recall when some label kind has both classes."""
    with matplotlib.rc_context(STYLE):
        figures = {
            ATTACK_PICTURE: attack_figure(ranking.graph, ranking.patterns) if ranking.graph is not None else None,
            HISTOGRAM_PICTURE: histogram_figure(table, ranking.scores),
            PR_PICTURE: precision_recall_figure(table, ranking.scores),
        }
        return {name: png(figure) for name, figure in figures.items() if figure is not None}


def png(figure: Figure) -> bytes:
    """A figure on the Agg canvas as PNG bytes (no software or time metadata, so equal figures
    give equal bytes)."""
    # One draw (the layout, if any, then pixels) and the buffer encoded: the same bytes as
    # `savefig`, which draws a layout-only pass first (a quarter less time for the attack picture);
    # the fastest zlib level: a sixth of the attack picture's time at level 6, for 9% more bytes.
    buffer = io.BytesIO()
    figure.canvas.draw()
    imsave(buffer, figure.canvas.buffer_rgba(), format="png", dpi=DPI, metadata={"Software": None},
           pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def _plain(text: object) -> str:
    """Text from the data for matplotlib: ``$`` escaped, so that ``$x$`` is not read as math."""
    return str(text).replace("$", r"\$")


def agg_figure(width: float, height: float, cols: int = 1) -> tuple[Figure, list[Axes]]:
    """A figure on the Agg canvas (size in inches, constrained layout) and its ``cols`` axes in a row."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, list(figure.subplots(1, cols, squeeze=False).ravel())


def attack_figure(graph: nx.DiGraph, patterns: pd.DataFrame) -> Figure:
    """One panel per top pattern (at most ``TOP_PATTERNS``) with edges in ``graph``.

    A panel has a lane per entity (the ``MAX_LANES`` with the most transitions) and a column per
    step type; a node is an (entity, type) step labelled with its alert count, an arrow a
    transition whose width and label give its count (edge attribute ``count``).
    """
    panels = [(row, sub) for row in patterns.head(TOP_PATTERNS).itertuples()
              if (sub := _pattern_edges(graph, int(row.pattern_id))).number_of_edges()]
    if not panels:
        figure, (ax,) = agg_figure(8, 1.5)
        ax.text(0.5, 0.5, "no candidate attack pattern found", ha="center", va="center")
        ax.set_axis_off()
        return figure
    lanes = [_entities(graph, sub) for _, sub in panels]
    # Fixed margins in inches, not a layout engine (a third of the drawing time), and no ticks.
    boxes = [LANE * (min(len(entities), MAX_LANES) + 0.3) for entities in lanes]
    height = sum(boxes) + len(boxes) * (ABOVE + BELOW)
    figure = Figure(figsize=(WIDTH, height), dpi=DPI)
    FigureCanvasAgg(figure)
    # The lanes start right of the widest entity name (measured, not estimated from its length).
    left = _name_width(figure, [e for entities in lanes for e in entities[:MAX_LANES]]) + (NAME_GAP / DPI) + MARGIN
    top = height
    for box, (row, sub), entities in zip(boxes, panels, lanes):
        top -= ABOVE + box
        ax = figure.add_axes((left / WIDTH, top / height, 1 - (left + MARGIN) / WIDTH, box / height))
        _draw_pattern(ax, graph, sub, row, entities)
        top -= BELOW
    return figure


def _name_width(figure: Figure, entities: list[str]) -> float:
    """Width in inches of the widest of ``entities`` drawn as an entity name."""
    renderer, probe = figure.canvas.get_renderer(), figure.text(0, 0, "", fontsize=NAME_SIZE)
    widths = [probe.set_text(_plain(_short(e))) or probe.get_window_extent(renderer).width for e in entities]
    probe.remove()
    return max(widths, default=0.0) / DPI


def _pattern_edges(graph: nx.DiGraph, pattern_id: int) -> nx.DiGraph:
    """The edges that pattern ``pattern_id`` produced (edge attribute ``patterns``), with their data,
    in ``graph``'s order."""
    return _ordered_subgraph(graph, (str(pattern_id) in str(ids).split(";")
                                     for _, _, ids in graph.edges(data="patterns", default="")))


def _ordered_subgraph(graph: nx.DiGraph, keep: Iterable[bool]) -> nx.DiGraph:
    """The edges of ``graph`` where ``keep`` (one flag per edge, in edge order) holds, with their
    data and end nodes, as a new graph in ``graph``'s order. Not a networkx view: a view of few
    nodes iterates a set of them, in an order that changes with Python's hash seed, and so would
    the drawing order of overlapping arrows and the PNG bytes from one run to the next."""
    out = nx.DiGraph()
    out.add_edges_from(edge for edge, kept in zip(graph.edges(data=True), keep) if kept)
    return out


def _entities(graph: nx.DiGraph, sub: nx.DiGraph) -> list[str]:
    """Entities of ``sub``, most transitions first (ties by name)."""
    activity: dict[str, int] = {}
    for u, _, count in sub.edges(data="count", default=1):
        entity = str(graph.nodes[u]["entity"])
        activity[entity] = activity.get(entity, 0) + int(count)
    return sorted(activity, key=lambda e: (-activity[e], e))


def _draw_pattern(ax: Axes, graph: nx.DiGraph, sub: nx.DiGraph, pattern: tuple, ranked: list[str]) -> None:
    """Draw one pattern's transitions on its first ``MAX_LANES`` entities of ``ranked``: lanes top
    to bottom, steps left to right."""
    nodes, entities = graph.nodes, ranked[:MAX_LANES]
    drawn = _ordered_subgraph(sub, (nodes[u]["entity"] in entities for u, _ in sub.edges))  # an edge joins one entity's steps
    steps = str(pattern.steps).split(STEP_SEPARATOR)
    columns = list(dict.fromkeys([*steps, *sorted(str(nodes[n]["type"]) for n in drawn)]))
    pos = {n: (columns.index(str(nodes[n]["type"])), -entities.index(nodes[n]["entity"])) for n in drawn}
    counts = dict(((u, v), int(c)) for u, v, c in drawn.edges(data="count", default=1))
    widths = [1 + 4 * counts[e] / max(counts.values()) for e in drawn.edges]
    nx.draw_networkx_nodes(drawn, pos, ax=ax, node_size=NODE_SIZE, node_color=NODE_COLOR)
    nx.draw_networkx_labels(drawn, pos, ax=ax, labels={n: nodes[n].get("alerts", "") for n in drawn},
                            font_size=7, font_color="white")
    with _limits_kept(ax):
        nx.draw_networkx_edges(drawn, pos, ax=ax, width=widths, edge_color=ATTACK_COLOR, alpha=0.7, arrows=True,
                               arrowsize=12, node_size=NODE_SIZE, connectionstyle=f"arc3,rad={CURVE}")
    # Counts at the middle of each curve, placed here (networkx's curved-label placement took a
    # third of the time of this picture). Arc3 bends an edge in display units: its middle is
    # CURVE/2 times the edge's display vector, turned a right angle, off the straight line.
    box = ax.get_position()
    x_dots, y_dots = box.width * WIDTH * DPI / len(columns), LANE * DPI  # per data unit (see the limits below)
    for (u, v), count in counts.items():
        (x0, y0), (x1, y1) = pos[u], pos[v]
        bend_x, bend_y = CURVE / 2 * (y1 - y0) * y_dots / x_dots, -CURVE / 2 * (x1 - x0) * x_dots / y_dots
        x, y = ((x0 + x1) / 2 + bend_x, (y0 + y1) / 2 + bend_y) if u != v else (x0, y0 + 0.3)
        ax.text(x, y, str(count), fontsize=7, ha="center", va="center",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "lw": 0})
    shown = f"; the {len(entities)} busiest of {len(ranked)} entities" if len(ranked) > len(entities) else ""
    ax.set_title(f"pattern {pattern.pattern_id}: {pattern.occurrences} occurrences, {pattern.alert_count} alerts, "
                 f"score {pattern.score:.3g}{shown}\n" + _plain(textwrap.shorten(str(pattern.steps), 150)), loc="left")
    # Names as plain text beside the lanes: ticks cost a sixth of the drawing time.
    ax.set_axis_off()
    below = offset_copy(ax.get_xaxis_transform(), fig=ax.figure, y=-NAME_GAP, units="dots")
    for x, column in enumerate(columns):
        ax.text(x, 0, _plain(textwrap.fill(column, 24, max_lines=3, placeholder="...")), transform=below,
                fontsize=NAME_SIZE, ha="center", va="top", gid=STEP_NAME)
    beside = offset_copy(ax.get_yaxis_transform(), fig=ax.figure, x=-NAME_GAP, units="dots")
    for y, entity in enumerate(entities):
        ax.text(0, -y, _plain(_short(entity)), transform=beside, fontsize=NAME_SIZE, ha="right", va="center",
                gid=ENTITY_NAME)
    ax.set_xlim(-0.6, len(columns) - 0.4)
    ax.set_ylim(-len(entities) + 0.3, 0.6)


@contextmanager
def _limits_kept(ax: Axes) -> Iterator[None]:
    """Patches added to ``ax`` inside do not grow its data limits. networkx adds each arrow by
    ``add_patch``, which lays the curved, shortened arrow out in display space only to grow the
    limits, and the panels set their limits themselves: 0.32 s against 0.43 s for the attack
    picture of 100,000 simulated alerts, the same PNG bytes. (matplotlib's hook is private: should
    it be renamed, the shadow below goes unused and the picture is only slower.)"""
    ax._update_patch_limits = lambda patch: None
    try:
        yield
    finally:
        del ax._update_patch_limits


def _short(text: object, width: int = ENTITY_CHARS) -> str:
    """``text`` cut to ``width`` characters (the last one an ellipsis if cut)."""
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def histogram_figure(table: AlertTable, scores: np.ndarray) -> Figure:
    """Score histogram on a log count axis; one panel per label kind, attacks over benign alerts."""
    scores = np.asarray(scores, dtype=np.float64)
    lo, hi = (scores.min(), scores.max()) if len(scores) else (0.0, 1.0)
    # (Nearly) equal scores: one bin around them (BINS bins over a span of round-off fail).
    flat = hi - lo <= 1e-9 * max(1.0, abs(hi))
    edges = np.array([lo - 0.5, hi + 0.5]) if flat else np.histogram_bin_edges(scores, bins=BINS)
    kinds = table.label_kinds
    figure, axes = agg_figure(max(6, 4.5 * len(kinds)), 4, cols=max(len(kinds), 1))
    if not kinds:
        axes[0].hist(scores, bins=edges, log=True, color=NODE_COLOR, label=f"all alerts ({len(scores):,})")
    for ax, kind in zip(axes, kinds):
        attack = table.label(kind).astype(bool)
        ax.hist([scores[~attack], scores[attack]], bins=edges, histtype="stepfilled", alpha=0.55, log=True,
                color=[BENIGN_COLOR, ATTACK_COLOR],
                label=[f"benign ({np.count_nonzero(~attack):,})", f"attack ({np.count_nonzero(attack):,})"])
        ax.set_title(_plain(f"{kind} labels"), loc="left")
    for ax in axes:
        ax.set_xlabel("score (higher = more likely a true positive)")
        ax.set_ylabel("alerts (log scale)")
        ax.legend(loc="upper right")
    return figure


def precision_recall_figure(table: AlertTable, scores: np.ndarray) -> Figure | None:
    """Precision against recall over all alerts, one curve per label kind with both classes, AP in
    the legend; None when no kind has both classes.

    The curve is the step function whose area is the AP of ``car.eval.metrics``.
    """
    curves = [(kind, table.label(kind)) for kind in table.label_kinds]
    curves = [(kind, labels, ap) for kind, labels in curves if not np.isnan(ap := average_precision(scores, labels))]
    if not curves:
        return None
    figure, (ax,) = agg_figure(6, 4.5)
    for kind, labels, ap in curves:
        precision, recall = precision_recall_curve(scores, labels)
        # where="pre": precision[i] holds from recall[i-1] to recall[i], so the area is the AP.
        (line,) = ax.step(np.r_[0.0, recall], np.r_[precision[0], precision], where="pre",
                          label=_plain(f"{kind}: AP {ap:.3f}"))
        ax.axhline(labels.mean(), color=line.get_color(), linestyle=":", linewidth=0.8)
    label_precision_recall(ax, "precision-recall (dotted: share of attacks, a random order's precision)")
    ax.legend(loc="upper right")
    return figure


def label_precision_recall(ax: Axes, title: str) -> None:
    """Axis names and limits (0 to 1.01) of a precision-recall plot, and its ``title`` on the left."""
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_title(title, loc="left")
