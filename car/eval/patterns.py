"""Pattern evaluation against alert labels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from car.alerts import AlertTable


def label_patterns(patterns: pd.DataFrame, pattern_alerts: np.ndarray | None, table: AlertTable) -> pd.DataFrame:
    """Add ``precision_<kind>`` per pattern: the share of its occurrence alerts labelled positive.

    pattern_alerts: (nnz, 2) pairs (alert row, pattern_id) of the occurrence matrix.
    """
    out = patterns.copy()
    if pattern_alerts is None or not len(patterns):
        for kind in table.label_kinds:
            out[f"precision_{kind}"] = pd.Series(dtype=np.float64)
        return out
    rows, ids = pattern_alerts[:, 0], pattern_alerts[:, 1]
    size = np.bincount(ids, minlength=int(out["pattern_id"].max()) + 1).astype(np.float64)
    for kind in table.label_kinds:
        hits = np.bincount(ids, weights=table.label(kind)[rows], minlength=len(size))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"precision_{kind}"] = (hits / size)[out["pattern_id"].to_numpy(np.int64)]
    return out
