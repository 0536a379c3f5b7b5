"""experiments/ablations.py: the development-run script (its extra variants, its P2 histories)."""

import argparse
import importlib.util
import json
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, SHARED_DATA


@pytest.fixture
def ablations():
    """The script as a module (experiments/ is not a package)."""
    spec = importlib.util.spec_from_file_location("ablations", REPO / "experiments" / "ablations.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ablations_script_runs_extra_variants_given_on_the_command_line(ablations, tmp_path, monkeypatch, capsys):
    """experiments/ablations.py --also NAME=OVERRIDES: a variant beyond the built-in ones is fitted,
    scored and written next to them; a malformed one stops with a usage error."""
    out = tmp_path / "a.json"
    monkeypatch.setattr(sys, "argv", ["ablations.py", "--scenarios", "--seeds", "0", "--variants", "rarity",
                                      "--also", "no-similarity=model.ranking.beta=0 model.ranking.neighbours=5",
                                      "--out", str(out)])
    monkeypatch.setattr(ablations, "datasets", lambda args, folder: [
        ("sim-small", ["data=enterprise_sim", "data.n_alerts=3000", "seed=0"], False)])
    ablations.main()
    rows = json.loads(out.read_text())["results"]["sim-small"]
    assert set(rows) == {"rarity", "no-similarity"}
    assert 0.0 < rows["no-similarity"]["attack/raw/ap"] <= 1.0
    assert {"patterns/campaign_precision_at_5", "patterns/campaign_recall_at_5"} <= set(rows["no-similarity"])
    monkeypatch.setattr(sys, "argv", ["ablations.py", "--also", "nameonly"])
    with pytest.raises(SystemExit):
        ablations.main()
    assert "write NAME=OVERRIDES" in capsys.readouterr().err


def test_ablations_history_option_sets_every_p2_history_and_skips_its_own_scenario(ablations):
    if not (SHARED_DATA / "ait-ads").exists():
        pytest.skip("../shared/data/ait-ads is absent (a user's machine); CI has it")
    sets = ablations.datasets(argparse.Namespace(seeds=[], scenarios=["shaw", "fox"], protocols=["p2"], history="fox",
                                                 sim_alerts=20000, sim_hosts=120, sim_options=[], without_hosts=[]))
    assert [name for name, _, _ in sets] == ["shaw-p2-history-fox"]
    assert sets[0][1][-1].endswith("fox_alerts.csv.gz") and sets[0][1][-1].startswith("data.history=")


def test_ablations_without_hosts_ranks_filtered_copies_of_batch_and_history(ablations, tmp_path):
    """--without-hosts intranet_server: the AIT-ADS runs without the host of the dirb flood
    (docs/results.md, session 15), history filtered too."""
    if not (SHARED_DATA / "ait-ads").exists():
        pytest.skip("../shared/data/ait-ads is absent (a user's machine); CI has it")
    sets = ablations.datasets(argparse.Namespace(seeds=[], scenarios=["russellmitchell"], protocols=["p1", "p2"],
                                                 history=None, sim_alerts=20000, sim_hosts=120, sim_options=[],
                                                 without_hosts=["intranet_server"]), tmp_path)
    assert [name for name, _, _ in sets] == ["russellmitchell-without-intranet_server-p1",
                                             "russellmitchell-without-intranet_server-p2"]
    files = {o.split("=", 1)[1] for _, overrides, _ in sets for o in overrides if o.startswith(("data.path", "data.history"))}
    assert files == {str(tmp_path / "russellmitchell_alerts.csv.gz"), str(tmp_path / "shaw_alerts.csv.gz")}
    for file in files:
        hosts = pd.read_csv(file, usecols=["host"])["host"]
        assert len(hosts) > 1000 and "intranet_server" not in set(hosts)


def test_ablations_simulator_options_reach_every_seed(ablations):
    """--sim-alerts, --sim-hosts and --sim-options: the scale runs and the sensitivity sweep of
    docs/results.md (many hosts, few alerts each; noise)."""
    sets = ablations.datasets(argparse.Namespace(seeds=[0, 3], scenarios=[], protocols=["p1"], history=None,
                                                 sim_alerts=50000, sim_hosts=5000, sim_options=["noise=0.3"],
                                                 without_hosts=[]))
    assert [name for name, _, _ in sets] == ["sim-seed0", "sim-seed3"]
    for (_, overrides, has_history), seed in zip(sets, (0, 3)):
        assert not has_history
        assert {"data.n_alerts=50000", "data.n_hosts=5000", "data.noise=0.3", f"seed={seed}"} <= set(overrides)


@pytest.fixture
def ap_loss(monkeypatch):
    """experiments/ap_loss.py as a module; it imports ablations.py from its own folder."""
    monkeypatch.syspath_prepend(str(REPO / "experiments"))
    spec = importlib.util.spec_from_file_location("ap_loss", REPO / "experiments" / "ap_loss.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ap_loss_groups_add_up_to_the_ap_of_each_variant(ap_loss, tmp_path, monkeypatch, capsys):
    """experiments/ap_loss.py on a small simulation: per stage, the AP each variant loses; the
    groups' losses add up to 1 - AP as evaluate_alerts computes it, and a column that does not
    exist stops with its name and the columns there are."""
    out = tmp_path / "loss.json"
    monkeypatch.setattr(sys, "argv", ["ap_loss.py", "--sim-alerts", "3000", "--by", "stage",
                                      "--variants", "rarity", "car-prior-only", "--out", str(out)])
    ap_loss.main()
    rows = {row["group"]: row for row in json.loads(out.read_text())["table"]}
    assert set(rows) == {"recon", "exploit", "lateral", "privesc", "exfil", "all"}
    for variant in ("rarity", "car-prior-only"):
        lost = sum(row[f"{variant} lost"] for group, row in rows.items() if group != "all")
        overrides = ap_loss.data_overrides(argparse.Namespace(scenario=None, seed=0, sim_alerts=3000, sim_hosts=120))
        table, ranking, _ = ap_loss.ablations.fit_rank(overrides, ap_loss.ablations.VARIANTS[variant], {})
        ap = ap_loss.ablations.evaluate_alerts(table, ranking.scores)["attack/raw/ap"]
        assert lost == pytest.approx(1.0 - ap) and rows["all"][f"{variant} precision"] == pytest.approx(ap)
    assert rows["all"]["attacks"] == sum(row["attacks"] for group, row in rows.items() if group != "all")
    assert "| recon |" in capsys.readouterr().out
    # steps-here: how many types of the attack's campaign its entity shows, checked one alert at a time.
    steps = ap_loss.group_of(table, "steps-here")
    frame = table.alerts.assign(campaign=table.labels["campaign"].to_numpy())
    for i in np.flatnonzero(table.label("attack") == 1)[::7]:
        same = frame[(frame["campaign"] == frame["campaign"].iat[i]) & (frame["entity"] == frame["entity"].iat[i])]
        assert steps[i] == str(min(same["type"].nunique(), 3)).replace("3", "3+")
    monkeypatch.setattr(sys, "argv", ["ap_loss.py", "--sim-alerts", "3000", "--by", "colour", "--variants", "rarity"])
    with pytest.raises(SystemExit, match="--by 'colour' is not a column; use one of .*stage.* or steps-here"):
        ap_loss.main()
