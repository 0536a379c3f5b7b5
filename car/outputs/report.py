"""report.html: one self-contained page per run for an analyst: run summary, top alerts, top
patterns and the pictures.

Everything is inline (CSS, pictures as base64 ``data:`` URIs; no script, font or link): the page
opens offline, from a mail attachment or MLflow's artifact view, and fetches nothing. Alert text
is untrusted, so every value is HTML-escaped, and the page's Content-Security-Policy forbids
scripts and any load other than its own inline pictures and style.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from car.alerts import AlertTable
from car.outputs.files import iso_times
from car.outputs.pictures import ATTACK_PICTURE, HISTOGRAM_PICTURE, PR_PICTURE
from car.progress import quantity

TOP_ALERTS = 50
TOP_PATTERNS = 20
ALERT_COLUMNS = ["rank", "time", "entity", "type", "score", "why"]
PATTERN_COLUMNS = ["rank", "score", "novelty", "steps", "occurrences", "alert_count", "entities", "next_steps"]
LEVELS = ("raw", "grouped")
METRICS = {"ap": "AP", "roc_auc": "ROC-AUC", "precision_at_100": "precision@100", "recall_at_100": "recall@100",
           "workload_at_95": "workload to 95% recall"}
CAPTIONS = {
    ATTACK_PICTURE: "Attack scenarios of the top patterns (attack_graph.graphml): one lane per entity, one column "
                    "per step; a node's number is its alerts, an arrow's width and number how often the transition "
                    "occurs, both counted over the occurrences of the top patterns of attack_graph.graphml.",
    HISTOGRAM_PICTURE: "Scores of all ranked alerts (log count axis); with labels, attacks over benign alerts.",
    PR_PICTURE: "Precision against recall down the ranking, per label kind; the AP is that of metrics.json.",
}
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } tr:nth-child(even) td { background: #fafafa; }
td { max-width: 40em; overflow-wrap: anywhere; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; max-width: 60em; }
"""


def report_html(
    table: AlertTable,
    alerts: pd.DataFrame,
    patterns: pd.DataFrame,
    metrics: dict[str, float],
    pictures: dict[str, bytes],
    model_name: str | None = None,
) -> str:
    """The page for one run.

    alerts: ranked_alerts.csv's frame (rank order); patterns: ranked_patterns.csv's frame with
    ``precision_<kind>``; metrics: metrics.json's values; pictures: PNG bytes by file name.
    """
    title = f"CAR report: {model_name or 'ranking'} on {table.source}"
    parts = [
        f"<h1>{_text(title)}</h1>",
        "<h2>Run</h2>", _summary(table, patterns, model_name),
        *(["<h2>Metrics</h2>", _metrics(metrics, table.label_kinds)] if metrics else []),
        f"<h2>Top {quantity(min(TOP_ALERTS, len(alerts)), 'alert')}</h2>", _alerts(alerts),
        f"<h2>Top {quantity(min(TOP_PATTERNS, len(patterns)), 'pattern')}</h2>", _patterns(patterns),
        *(["<h2>Pictures</h2>", *(_picture(name, png) for name, png in pictures.items())] if pictures else []),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">\n"
        f"<title>{_text(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(parts) + "\n</body>\n</html>\n"
    )


def _text(value: object) -> str:
    """A value as escaped HTML text: empty for missing, numbers with 4 significant digits."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value), quote=True)


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], table_id: str) -> str:
    """An HTML table; numbers right-aligned."""
    head = "".join(f"<th>{_text(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>'


def _cell(value: object) -> str:
    """One table cell; numbers (numpy ones too) right-aligned."""
    if isinstance(value, np.generic):
        value = value.item()
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return f'<td class="num">{_text(value)}</td>' if number else f"<td>{_text(value)}</td>"


def _summary(table: AlertTable, patterns: pd.DataFrame, model_name: str | None) -> str:
    rows = [
        ("source", table.source),
        *([("model", model_name)] if model_name else []),
        ("alerts ranked", len(table)),
        ("input rows rejected (rejected_alerts.csv)", len(table.rejected)),
        ("entities", table.alerts["entity"].nunique()),
        ("alert types", table.alerts["type"].nunique()),
        ("first alert", _iso(table.alerts["time"].min())),
        ("last alert", _iso(table.alerts["time"].max())),
        ("candidate attack patterns", len(patterns)),
        ("label kinds", ", ".join(table.label_kinds) or "none"),
    ]
    return _table(["what", "value"], rows, "summary")


def _iso(value: pd.Timestamp) -> str:
    return str(iso_times(pd.DataFrame({"t": [value]}))["t"].iloc[0])


def _metrics(metrics: dict[str, float], kinds: list[str]) -> str:
    """The main alert metrics per label kind and level, then every other metric (e.g. of patterns) by key."""
    levels = [(kind, level) for kind in kinds for level in LEVELS]
    rows = [(kind, level, *(metrics.get(f"{kind}/{level}/{key}") for key in METRICS)) for kind, level in levels]
    alert_prefixes = tuple(f"{kind}/{level}/" for kind, level in levels)
    others = [(key, value) for key, value in sorted(metrics.items()) if not key.startswith(alert_prefixes)]
    tables = [_table(["labels", "level", *METRICS.values()], rows, "metrics")] if rows else []
    return "\n".join(tables + ([_table(["metric", "value"], others, "other_metrics")] if others else []))


def _alerts(alerts: pd.DataFrame) -> str:
    top = iso_times(alerts.head(TOP_ALERTS))
    columns = [c for c in ALERT_COLUMNS if c in top] + [c for c in top if c.startswith("label_")]
    return _table(columns, top[columns].itertuples(index=False), "alerts")


def _patterns(patterns: pd.DataFrame) -> str:
    if not len(patterns):
        return "<p>No candidate attack pattern (the model finds none, or gives none).</p>"
    top = patterns.head(TOP_PATTERNS)
    columns = [c for c in PATTERN_COLUMNS if c in top] + [c for c in top if c.startswith("precision_")]
    return _table(columns, top[columns].itertuples(index=False), "patterns")


def _picture(name: str, png: bytes) -> str:
    caption = CAPTIONS.get(name, name)
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_text(name)}">'
            f"<figcaption>{_text(name)}: {_text(caption)}</figcaption></figure>")
