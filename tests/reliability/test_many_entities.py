"""Load shape: tens of thousands of entities with a few alerts each are all ranked (the time
and memory of the 1 M-alert run over 100,000 hosts are in docs/performance.md)."""

from __future__ import annotations

import numpy as np

from car.data.simulate import load_enterprise_sim
from conftest import REPO
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate


def test_twenty_thousand_entities_are_all_ranked_with_patterns():
    table = load_enterprise_sim(n_alerts=60_000, n_hosts=100_000, seed=3)
    assert table.alerts["entity"].nunique() > 20_000
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        model = instantiate(compose("train", overrides=["model=car"]).model)
    ranking = model.fit(table.unlabeled(), trainer={"max_epochs": 2}).rank(table.unlabeled())
    assert len(ranking.scores) == len(table) and np.isfinite(ranking.scores).all()
    assert len(ranking.patterns) > 0
