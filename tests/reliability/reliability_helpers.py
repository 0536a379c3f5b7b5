"""Shared helpers of the reliability tests: writing bad files, checking errors and accounting,
and running ``train.py`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from car.alerts import AlertTable

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
# Words one of which every one-line error names as its fix.
FIX_WORDS = ("data.", "fix", "check", "set ", "use ", "close the quote", "download", "map them")


def write(path: Path, data: str | bytes) -> str:
    """Write text (UTF-8) or bytes to ``path``; return it as a string."""
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return str(path)


def assert_one_line_error(message: str, *needles: str) -> None:
    """A user-facing error: one line, naming each needle (file, line, key) and a fix."""
    assert "\n" not in message, f"error spans lines: {message!r}"
    assert "Traceback" not in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert any(word in message for word in FIX_WORDS), f"no fix named in {message!r}"


def assert_accounted(table: AlertTable, n_input: int) -> None:
    """Every input row is an alert or rejected, exactly once: ids partition range(n_input)."""
    ids = np.concatenate([table.alerts["alert_id"].to_numpy(), table.rejected["alert_id"].to_numpy()])
    assert np.array_equal(np.sort(ids.astype(np.int64)), np.arange(n_input)), sorted(ids.tolist())
    assert table.alerts["alert_id"].is_monotonic_increasing
    assert table.rejected["reason"].str.len().gt(0).all()


def run_train(out: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python train.py <overrides>`` writing into ``out``, no MLflow, one thread, no progress bar."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    env.pop("MLFLOW_TRACKING_URI", None)
    args = [sys.executable, "train.py", *overrides, "logger=none", "trainer.enable_progress_bar=false",
            f"hydra.run.dir={out}"]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def assert_clean_failure(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The run failed with exit ``code`` and no Python traceback; returns its stderr."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == code, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    for needle in needles:
        assert needle in output, output[-3000:]
    return proc.stderr


def read_output(path: Path) -> pd.DataFrame:
    """An output CSV as written: every cell as its text (empty cells as '')."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


CALLS: list[tuple] = []


def record_call(*args, **kwargs) -> None:
    """A config ``_target_`` that records that it was called (it must never be)."""
    CALLS.append((args, kwargs))
