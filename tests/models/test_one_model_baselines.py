"""Quality floors of the one-model baselines (`model=hpyp`, `model=ngram`, `model=ape`).

Each ranks alone by one of CAR's parts: temporal surprise of the Pitman-Yor tree, of a fixed-order
n-gram, or content anomaly of the APE embeddings. They are weak rankers (docs/results.md), so the
floor is a random ranking's: the AP of a random order is the share of positives, and each must
beat it by 40 % on the simulator and on AIT-ADS russellmitchell (P1, strict labels). Measured
(experiments/ablations.py, session 14): simulator seed 0 AP 0.061 / 0.066 / 0.046 (share 0.030),
russellmitchell 0.400 / 0.377 / 0.407 (share 0.241). A constant or random score fails both; on
the simulator so does each ranking turned upside down. On russellmitchell the two surprise
baselines put attacks at both ends (flood steps are predictable, first steps surprising: 95 %
recall needs 99 % of the alerts), so there their reverse passes too.
"""

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from car.data import load_alerts
from car.eval.metrics import average_precision
from conftest import REPO, shared_file

BASELINES = ["hpyp", "ngram", "ape"]
OVER_RANDOM = 1.4


def fit_rank(model: str, table):
    """The baseline fitted with its config's trainer budget (conf/trainer/cpu.yaml) and its scores."""
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=[f"model={model}"])
    trainer = {**OmegaConf.to_container(cfg.trainer, resolve=True), "enable_progress_bar": False}
    return instantiate(cfg.model).fit(table.unlabeled(), trainer=trainer).rank(table.unlabeled()).scores


@pytest.fixture(scope="module")
def simulator():
    return load_alerts({"format": "enterprise_sim", "n_alerts": 20000, "seed": 0}, None)


@pytest.mark.parametrize("model", BASELINES)
def test_baseline_beats_a_random_ranking_on_the_simulator(simulator, model):
    y = simulator.label("attack")
    assert average_precision(fit_rank(model, simulator), y) > OVER_RANDOM * y.mean()


@pytest.mark.parametrize("model", BASELINES)
def test_baseline_beats_a_random_ranking_on_ait_ads(model):
    table = load_alerts({"format": "ait_ads"}, str(shared_file("ait-ads", "russellmitchell_alerts.csv.gz")))
    y = table.label("strict")
    assert average_precision(fit_rank(model, table), y) > OVER_RANDOM * y.mean()
