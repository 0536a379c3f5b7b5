"""The `car` command line."""

import pandas as pd
import pytest

from car.cli import main
from car.data import load_alerts


def test_simulate_writes_a_csv_the_csv_loader_reads_back(tmp_path, capsys):
    out = tmp_path / "sim.csv"
    assert main(["simulate", "--out", str(out), "--n-alerts", "2000", "--seed", "3"]) == 0
    rows = len(pd.read_csv(out))
    assert f"wrote {rows}" in capsys.readouterr().out
    table = load_alerts(
        {"format": "csv", "columns": {"time": "time", "entity": "host", "type": "type"},
         "attributes": ["user", "process"], "labels": {"attack": "label_attack"}},
        str(out),
    )
    assert len(table) == rows and len(table.rejected) == 0
    assert 0 < table.label("attack").sum() < rows


def test_an_output_path_that_cannot_be_written_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the output folder should be")
    assert main(["simulate", "--out", str(blocker / "sim.csv"), "--n-alerts", "300"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"car: error: {blocker}:") and err.count("\n") == 1 and "Traceback" not in err


def test_cli_error_is_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "x.csv"), "--n-alerts", "-5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("car: error:") and err.count("\n") == 1


def test_simulate_takes_every_simulator_option(tmp_path):
    from car.data.simulate import simulate_enterprise

    options = {"n_hosts": 30, "n_campaigns": 3, "attack_fraction": 0.1, "days": 3, "start": "2024-01-01",
               "noise": 0.3, "pattern_length": 4, "gap_minutes": 60.0}
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    assert main(["simulate", "--out", str(tmp_path / "s.csv"), "--n-alerts", "2000", "--seed", "1", *argv]) == 0
    written = pd.read_csv(tmp_path / "s.csv", dtype=str, keep_default_na=False)
    expected = simulate_enterprise(n_alerts=2000, seed=1, **options).alerts
    assert written["host"].tolist() == expected["host"].astype(str).tolist()
    assert written["time"].iloc[0].startswith("2024-01-01") and written["host"].nunique() <= 30


def test_simulate_options_are_the_simulators():
    from car.cli import SIMULATOR_OPTIONS
    from car.data.simulate import DEFAULTS

    assert set(SIMULATOR_OPTIONS) == set(DEFAULTS) - {"n_alerts", "seed"}
    for key, (kind, text) in SIMULATOR_OPTIONS.items():
        default = DEFAULTS[key] if key == "start" else f"{DEFAULTS[key]:g}"
        assert kind is (str if key == "start" else type(DEFAULTS[key])), key
        assert f"(default {default})" in text, key


def test_car_without_a_verb_names_the_verbs(capsys):
    with pytest.raises(SystemExit) as stop:
        main([])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "required: {simulate,rank,compare}" in err and "verb" not in err
