"""report.html: the top alerts and patterns of the run, pictures embedded, nothing fetched, and
hostile alert text shown as text."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from car.data import load_alerts
from car.models.baselines import Rarity
from car.outputs.pictures import PICTURE_FILES
from car.outputs.report import TOP_ALERTS, TOP_PATTERNS
from car.pipeline import write_outputs
from outputs_helpers import car_run

HOSTILE_TYPE = "<script>alert(1)</script>"
HOSTILE_ENTITY = '"><img src=x onerror=alert(1)>'


class Page(HTMLParser):
    """The tables (by id, rows of cell texts, header row first), the img sources and every tag."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.tags: list[str] = []
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "table":
            self._table = self.tables.setdefault(dict(attrs)["id"], [])
        elif tag == "tr":
            self._table.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._table[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return car_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def page(run):
    return Page((run.out / "report.html").read_text(encoding="utf-8"))


def test_report_lists_the_top_alerts_as_in_ranked_alerts_csv(run, page):
    csv = pd.read_csv(run.out / "ranked_alerts.csv", dtype=str, keep_default_na=False).head(TOP_ALERTS)
    header, *rows = page.tables["alerts"]
    assert header == ["rank", "time", "entity", "type", "score", "why", "label_attack"]
    assert len(rows) == TOP_ALERTS
    for name in ("rank", "time", "entity", "type", "why", "label_attack"):
        assert [r[header.index(name)] for r in rows] == csv[name].tolist(), name
    scores = np.array([float(r[header.index("score")]) for r in rows])
    np.testing.assert_allclose(scores, csv["score"].astype(float), rtol=1e-3)


def test_report_lists_the_top_patterns_with_precision(run, page):
    csv = pd.read_csv(run.out / "ranked_patterns.csv", dtype=str, keep_default_na=False).head(TOP_PATTERNS)
    header, *rows = page.tables["patterns"]
    assert header == ["rank", "score", "novelty", "steps", "occurrences", "alert_count", "entities", "next_steps",
                      "precision_attack"]
    assert len(rows) == len(csv) == 7
    for name in ("rank", "steps", "occurrences", "entities", "next_steps"):
        assert [r[header.index(name)] for r in rows] == csv[name].tolist(), name
    precision = [float(r[header.index("precision_attack")]) for r in rows]
    np.testing.assert_allclose(precision, csv["precision_attack"].astype(float), rtol=1e-3)


def test_report_summarises_the_run_and_its_metrics(run, page):
    summary = dict(page.tables["summary"][1:])
    assert summary["source"] == "enterprise_sim" and summary["model"] == "car"
    assert summary["alerts ranked"] == "10000" and summary["candidate attack patterns"] == "7"
    metrics = {(r[0], r[1]): r for r in page.tables["metrics"][1:]}
    assert float(metrics["attack", "raw"][2]) == pytest.approx(run.metrics["attack/raw/ap"], rel=1e-3)
    assert float(metrics["attack", "grouped"][2]) == pytest.approx(run.metrics["attack/grouped/ap"], rel=1e-3)


def test_report_embeds_the_pictures_and_fetches_nothing(run, page):
    text = (run.out / "report.html").read_text(encoding="utf-8")
    assert len(page.images) == len(PICTURE_FILES)
    for src, name in zip(page.images, PICTURE_FILES):
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.removeprefix("data:image/png;base64,")) == (run.out / name).read_bytes()
    assert not re.search(r"https?://", text, flags=re.IGNORECASE)
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)


def test_hostile_alert_text_is_escaped(tmp_path):
    table = load_alerts({"format": "enterprise_sim", "n_alerts": 500, "seed": 3}, None)
    alerts = table.alerts.copy()
    alerts.loc[7, ["type", "entity"]] = [HOSTILE_TYPE, HOSTILE_ENTITY]  # one alert of a new type ranks first
    table = replace(table, alerts=alerts, source="<b>bold</b>.csv")
    ranking = Rarity().fit(table.unlabeled()).rank(table.unlabeled())
    ranking = replace(ranking, patterns=pd.DataFrame({
        "rank": [1], "pattern_id": [1], "score": [1.0], "novelty": [1.0], "dependency": [0.5],
        "steps": [f"{HOSTILE_TYPE} > a"],
        "occurrences": [5], "entities": [HOSTILE_ENTITY], "first_time": [pd.NaT], "last_time": [pd.NaT],
        "alert_count": [10], "next_steps": ["<i>x</i> (0.5)"]}))
    metrics = {"attack/raw/ap": 0.25, "patterns/<steps>_at_20": 0.5}
    write_outputs(tmp_path, table, ranking, None, metrics, model_name="<u>rarity</u>")
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    for raw in (HOSTILE_TYPE, HOSTILE_ENTITY, "<b>", "<i>", "<u>"):
        assert raw not in text
    page = Page(text)
    assert set(page.tags) <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "table", "thead",
                              "tbody", "tr", "th", "td", "p", "figure", "img", "figcaption"}
    first = page.tables["alerts"][1]
    assert first[2:4] == [HOSTILE_ENTITY, HOSTILE_TYPE], "the parsed page shows the text as it was"
    assert page.tables["patterns"][1][3] == f"{HOSTILE_TYPE} > a"
    assert page.tables["metrics"][1][:3] == ["attack", "raw", "0.25"]
    assert page.tables["other_metrics"][1:] == [["patterns/<steps>_at_20", "0.5"]]
