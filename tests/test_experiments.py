"""The benchmark experiment configs (conf/experiment): they compose, resolve to the right data
and models, and their sweeps expand to the expected jobs (Hydra's own expansion; no runs)."""

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import MissingConfigException
from omegaconf import DictConfig, OmegaConf, open_dict

from car.data.simulate import planted_patterns
from car.errors import ConfigError
from car.pipeline import build_model, check_resolves
from conftest import REPO, SHARED_DATA

SCENARIOS = ["fox", "harrison", "russellmitchell", "shaw", "wheeler"]
IN_BOTH_PROTOCOLS = ["car", "car_temporal_only", "car_dirichlet", "car_ngram2", "car_no_prior", "car_no_patterns",
                     "car_no_similarity", "hpyp", "ngram", "ape", "rarity", "rarity_bursts"]
FACTORS = {  # sensitivity factor: the config key its levels set
    "attack_fraction": "data.attack_fraction", "pattern_length": "data.pattern_length",
    "attribute_noise": "data.noise", "gap_minutes": "data.gap_minutes", "ranking_alpha": "model.ranking.alpha",
    "ranking_beta": "model.ranking.beta", "embedding_dim": "model.content.dim", "tree_depth": "model.temporal.depth",
}


@pytest.fixture(scope="module")
def conf():
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        yield


def job(experiment: str, *overrides: str) -> DictConfig:
    """The config of one job, resolved as train.py would see it (hydra node removed)."""
    cfg = compose("train", overrides=[f"+experiment={experiment}", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # for ${hydra:runtime.choices.model}
    with open_dict(cfg):
        del cfg["hydra"]
    try:
        return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    finally:
        HydraConfig.instance().cfg = None


def sweep(experiment: str, *command_line: str) -> list[dict[str, str]]:
    """The jobs of ``python train.py -m +experiment=<experiment> <command_line>``: each job's
    swept overrides as {key: value}, expanded by Hydra's BasicSweeper."""
    cfg = compose("train", overrides=[f"+experiment={experiment}"], return_hydra_config=True)
    params = [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()]
    overrides = OverridesParser.create().parse_overrides([*params, *command_line])
    (batch,) = BasicSweeper.split_arguments(overrides, None)
    return [dict(o.split("=", 1) for o in j) for j in batch]


def test_runs_started_in_the_same_second_get_folders_of_their_own(conf, monkeypatch):
    """Four train.py runs started together wrote into two folders named to the second: each
    folder held the files of the run that wrote last, and an MLflow run logged the other run's
    metrics.json and ranked_alerts.csv (AP 0.243 logged, 0.089 in its artifact). Run and sweep
    folders of two starts one microsecond apart differ."""
    import datetime as dt

    import hydra.core.utils

    folders = []
    for microsecond in (1, 2):
        class Clock(dt.datetime):
            @classmethod
            def now(cls, tz=None):
                return dt.datetime(2026, 12, 7, 4, 25, 52, microsecond)

        monkeypatch.setattr(hydra.core.utils, "datetime", Clock)
        cfg = compose("train", return_hydra_config=True)
        folders.append((cfg.hydra.run.dir, cfg.hydra.sweep.dir))
    assert folders[0][0] != folders[1][0] and folders[0][1] != folders[1][1], folders
    assert folders[0][0].startswith("outputs/train/2026-12-07_04-25-52"), folders


def test_ait_ads_sweeps_every_model_scenario_protocol_and_seed(conf):
    jobs = sweep("ait_ads")
    combos = {(j["model"], j["scenario"], j["protocol"], j["seed"]) for j in jobs}
    assert len(jobs) == len(combos) == 12 * 5 * 2 * 3
    assert {j["model"] for j in jobs} == set(IN_BOTH_PROTOCOLS)
    assert {j["scenario"] for j in jobs} == set(SCENARIOS)
    assert {j["protocol"] for j in jobs} == {"p1", "p2"} and {j["seed"] for j in jobs} == {"0", "1", "2"}
    assert len(sweep("ait_ads", "model=rarity,car", "seed=0")) == 2 * 5 * 2  # the command line narrows it


def test_peers_and_history_rarity_run_only_under_p2(conf):
    jobs = sweep("ait_ads_peers")
    assert len(jobs) == 3 * 5 * 3
    assert {j["model"] for j in jobs} == {"deepcase", "tiresias", "rarity_history"}
    assert {j["protocol"] for j in jobs} == {"p2"}
    assert not {j["model"] for j in jobs} & {j["model"] for j in sweep("ait_ads")}


def test_ait_ads_jobs_point_at_the_scenario_and_its_history(conf):
    p1 = job("ait_ads", "scenario=fox", "protocol=p1")
    assert (p1.protocol, p1.scenario, p1.method, p1.logger.experiment_name) == ("p1", "fox", "car", "ait_ads")
    assert p1.data.path == "../shared/data/ait-ads/fox_alerts.csv.gz" and p1.data.history is None
    for scenario in SCENARIOS:
        p2 = job("ait_ads", f"scenario={scenario}", "protocol=p2")
        history = "russellmitchell" if scenario == "shaw" else "shaw"
        assert (p2.protocol, p2.scenario) == ("p2", scenario)
        assert p2.data.path == f"../shared/data/ait-ads/{scenario}_alerts.csv.gz"
        assert p2.data.history == f"../shared/data/ait-ads/{history}_alerts.csv.gz"
        if SHARED_DATA.exists():  # relative to the launch directory, the repository root
            assert (REPO / p2.data.path).is_file() and (REPO / p2.data.history).is_file()


def test_every_swept_model_builds_and_ablations_change_only_their_option(conf):
    ablations = {"car_no_prior": ("ranking", "prior", False), "car_no_patterns": ("ranking", "alpha", 0.0),
                 "car_no_similarity": ("ranking", "beta", 0.0), "car_dirichlet": ("temporal", "prior", "dirichlet"),
                 "car_temporal_only": ("content", "enabled", False)}
    car = OmegaConf.to_container(job("ait_ads").model)
    for model in [*IN_BOTH_PROTOCOLS, "rarity_history"]:
        cfg = job("ait_ads", f"model={model}", "protocol=p2")
        assert cfg.method == model
        assert build_model(cfg.model).name == ("rarity" if model.startswith("rarity") else model)
        if model in ablations:
            group, option, value = ablations[model]
            options = OmegaConf.to_container(cfg.model)
            assert options[group][option] == value != car[group][option]
            options[group][option], options["name"] = car[group][option], car["name"]
            assert options == car, model
    for peer in ("deepcase", "tiresias"):
        if (REPO / "conf" / "model" / f"{peer}.yaml").exists():
            assert job("ait_ads_peers", f"model={peer}").method == peer


def test_protocol_must_be_p1_or_p2(conf):
    with pytest.raises(MissingConfigException, match="protocol/p3"):
        compose("train", overrides=["+experiment=ait_ads", "protocol=p3"])


def test_cptc_sweeps_teams_with_the_stage_map(conf):
    jobs = sweep("cptc")
    assert len(jobs) == 4 * 7 * 3 and "rarity" not in {j["model"] for j in jobs}
    cfg = job("cptc", "scenario=NationalTeam5")
    assert cfg.data.format == "cptc" and cfg.data.path == "../shared/data/cptc-2017/NationalTeam5.json.gz"
    assert cfg.stage_map == "../shared/data/cptc-2017/sage_signature_stage_map.csv"
    if SHARED_DATA.exists():
        for team in {j["scenario"] for j in jobs}:
            assert (REPO / "../shared/data/cptc-2017" / f"{team}.json.gz").is_file()
        assert (REPO / cfg.stage_map).is_file()


def test_synthetic_sweep_varies_one_factor_at_a_time_around_the_defaults(conf):
    jobs = sweep("synthetic_sweep")
    assert len(jobs) == len(FACTORS) * 4 * 3
    assert {j["sensitivity"] for j in jobs} == set(FACTORS) and {j["sensitivity.level"] for j in jobs} == {"l1", "l2", "l3", "l4"}
    default = job("synthetic_sweep")
    assert default.scenario == "attack_fraction=0.03"
    for factor, key in FACTORS.items():
        cfg = job("synthetic_sweep", f"sensitivity={factor}", "sensitivity.level=l1")
        levels = list(cfg.sensitivity.levels.values())
        assert OmegaConf.select(cfg, key) == levels[0] and cfg.scenario == f"{factor}={levels[0]}"
        assert len(set(levels)) == 4 and OmegaConf.select(default, key) in levels, factor
        for other in set(FACTORS.values()) - {key}:  # every other factor at its default
            assert OmegaConf.select(cfg, other) == OmegaConf.select(default, other), (factor, other)
        if key.startswith("data."):  # the simulator takes every level
            for value in levels:
                planted_patterns(cfg.seed, **{key.removeprefix("data."): value})


def test_unknown_sensitivity_level_is_a_one_line_config_error(conf):
    cfg = compose("train", overrides=["+experiment=synthetic_sweep", "sensitivity.level=l9"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as train.py's main receives it
    try:
        with pytest.raises(ConfigError, match=r"data.attack_fraction: .*sensitivity.levels.l9.* not found") as err:
            check_resolves(cfg)
    finally:
        HydraConfig.instance().cfg = None
    assert "\n" not in str(err.value)

