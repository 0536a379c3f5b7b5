"""One short CAR run on the simulator, written with write_outputs, shared by the picture and report tests."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from car.alerts import AlertTable
from car.data import load_alerts
from car.eval.metrics import evaluate_alerts
from car.models.base import Ranking
from car.pipeline import write_outputs
from conftest import REPO


@dataclass
class Run:
    table: AlertTable
    ranking: Ranking
    metrics: dict[str, float]
    out: Path
    files: list[Path]


@functools.cache
def car_run(base: Path) -> Run:
    """CAR (5 epochs) on 10,000 simulated alerts, seed 1 (7 patterns, attack labels), written into
    ``base``/car_run once a session (``base``: the session's ``tmp_path_factory.getbasetemp()``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    table = load_alerts({"format": "enterprise_sim", "n_alerts": 10000, "seed": 1}, None)
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        model = instantiate(compose("train", overrides=["model=car"]).model)
    trainer = {"max_epochs": 5, "logger": False, "enable_progress_bar": False}
    ranking = model.fit(table.unlabeled(), trainer=trainer).rank(table.unlabeled())
    torch.set_num_threads(threads)
    metrics = evaluate_alerts(table, ranking.scores)
    out = base / "car_run"
    return Run(table, ranking, metrics, out, write_outputs(out, table, ranking, None, metrics, model.name))
