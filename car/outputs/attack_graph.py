"""Attack-scenario graph of the top patterns: (entity, alert type) steps and observed transitions."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd

from car.temporal.patterns import Occurrences


def attack_graph(
    entity: np.ndarray, types: np.ndarray, times: pd.Series, occ: Occurrences, pattern_id: np.ndarray, top: int,
) -> nx.DiGraph:
    """Graph of the occurrences of patterns ranked 1..``top``.

    entity, types, times: per alert in the occurrence index space (n,); pattern_id (L,)
    gives each pattern's rank. Nodes ``"entity | type"`` carry entity, type and alert count;
    an edge joins consecutive steps of an occurrence, with count, first/last time (ISO)
    and the ids of the patterns that produced it.
    """
    steps = _occurrence_steps(occ, pattern_id <= top)
    graph = nx.DiGraph()
    if steps.empty:
        return graph
    steps["node"] = [f"{e} | {t}" for e, t in zip(entity[steps["alert"]], types[steps["alert"]])]
    steps["time"] = times.to_numpy(dtype="datetime64[ns]")[steps["alert"]]
    steps["pattern"] = pattern_id[steps["pattern"]]
    for node, group in steps.groupby("node", sort=True):
        a = group["alert"].iloc[0]
        graph.add_node(node, entity=str(entity[a]), type=str(types[a]), alerts=int(group["alert"].nunique()))
    nxt = steps.shift(-1)
    same = (nxt["occ"] == steps["occ"]).to_numpy()
    edges = pd.DataFrame({"src": steps["node"][same], "dst": nxt["node"][same], "time": nxt["time"][same],
                          "pattern": steps["pattern"][same]})
    for (src, dst), group in edges.groupby(["src", "dst"], sort=True):
        graph.add_edge(src, dst, count=len(group), first_time=_iso(group["time"].min()),
                       last_time=_iso(group["time"].max()),
                       patterns=";".join(map(str, sorted(set(group["pattern"].astype(int))))))
    return graph


def _occurrence_steps(occ: Occurrences, keep_pattern: np.ndarray) -> pd.DataFrame:
    """One row per (occurrence, alert) of the kept patterns, in step order.

    The steps of an occurrence are the pattern's F entries between its first and last alert
    (F is sorted by pattern, then alert).
    """
    n = int(max(occ.alert_idx.max(initial=0), occ.occ_last.max(initial=0))) + 1
    key = occ.pattern_idx * n + occ.alert_idx
    kept = np.flatnonzero(keep_pattern[occ.occ_pattern])
    lo = np.searchsorted(key, occ.occ_pattern[kept] * n + occ.occ_first[kept])
    hi = np.searchsorted(key, occ.occ_pattern[kept] * n + occ.occ_last[kept], side="right")
    length = hi - lo
    at = np.arange(length.sum()) + np.repeat(lo - np.cumsum(length) + length, length)
    return pd.DataFrame({"occ": np.repeat(kept, length), "pattern": occ.pattern_idx[at], "alert": occ.alert_idx[at]})


def _iso(value: pd.Timestamp) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%SZ")
