"""The `car` command line."""

import pandas as pd

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
