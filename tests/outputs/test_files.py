"""Safe output files: formulas neutralised, numbers kept, atomic writes."""

import pandas as pd

from car.outputs.files import neutralise_formulas, write_csv


def test_infinities_are_no_numbers_to_a_spreadsheet():
    frame = pd.DataFrame({"text": ["-inf", "+inf", "-Infinity", "-nan", "-1e5", "+.5"]})
    assert neutralise_formulas(frame)["text"].tolist() == ["'-inf", "'+inf", "'-Infinity", "'-nan", "-1e5", "+.5"]


def test_formula_cells_are_prefixed_and_numbers_stay_numbers(tmp_path):
    frame = pd.DataFrame(
        {
            "text": ["=cmd|'/c calc'!A1", "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx", "plain", "-5"],
            "number": [-1.5, 2, 3, 4, 5, 6, 7, -8],
        }
    )
    out = neutralise_formulas(frame)
    assert out["text"].tolist() == ["'=cmd|'/c calc'!A1", "'+1+2", "'-2+3", "'@SUM(A1)", "'\tx", "'\rx", "plain", "-5"]
    assert out["number"].tolist() == frame["number"].tolist()
    path = write_csv(frame, tmp_path / "x.csv")
    back = pd.read_csv(path)
    assert back["number"].tolist() == frame["number"].tolist()
    assert not back["text"].str.match(r"^[=+@]").any()
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"], "no temporary file may remain"
