"""experiments/ablations.py: the development-run script (its extra variants, its P2 histories)."""

import argparse
import importlib.util
import json
import sys

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
    monkeypatch.setattr(ablations, "datasets", lambda args: [
        ("sim-small", ["data=enterprise_sim", "data.n_alerts=3000", "seed=0"], False)])
    ablations.main()
    rows = json.loads(out.read_text())["results"]["sim-small"]
    assert set(rows) == {"rarity", "no-similarity"}
    assert 0.0 < rows["no-similarity"]["attack/raw/ap"] <= 1.0
    monkeypatch.setattr(sys, "argv", ["ablations.py", "--also", "nameonly"])
    with pytest.raises(SystemExit):
        ablations.main()
    assert "write NAME=OVERRIDES" in capsys.readouterr().err


def test_ablations_history_option_sets_every_p2_history_and_skips_its_own_scenario(ablations):
    if not (SHARED_DATA / "ait-ads").exists():
        pytest.skip("../shared/data/ait-ads is absent (a user's machine); CI has it")
    sets = ablations.datasets(argparse.Namespace(seeds=[], scenarios=["shaw", "fox"], protocols=["p2"], history="fox",
                                                 sim_alerts=20000, sim_hosts=120, sim_options=[]))
    assert [name for name, _, _ in sets] == ["shaw-p2-history-fox"]
    assert sets[0][1][-1].endswith("fox_alerts.csv.gz") and sets[0][1][-1].startswith("data.history=")


def test_ablations_simulator_options_reach_every_seed(ablations):
    """--sim-alerts, --sim-hosts and --sim-options: the scale runs and the sensitivity sweep of
    docs/results.md (many hosts, few alerts each; noise)."""
    sets = ablations.datasets(argparse.Namespace(seeds=[0, 3], scenarios=[], protocols=["p1"], history=None,
                                                 sim_alerts=50000, sim_hosts=5000, sim_options=["noise=0.3"]))
    assert [name for name, _, _ in sets] == ["sim-seed0", "sim-seed3"]
    for (_, overrides, has_history), seed in zip(sets, (0, 3)):
        assert not has_history
        assert {"data.n_alerts=50000", "data.n_hosts=5000", "data.noise=0.3", f"seed={seed}"} <= set(overrides)
