"""Attack-scenario graph of the top patterns: (entity, alert type) steps and observed transitions."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd

from car.temporal.patterns import Occurrences

ISO = "%Y-%m-%dT%H:%M:%SZ"  # edge times, UTC


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
    # Aggregated per node and per edge by groupby, not a Python loop over groups (10x faster).
    nodes = steps.groupby("node", sort=True)["alert"].agg(["first", "nunique"])
    graph.add_nodes_from((node, {"entity": str(entity[a]), "type": str(types[a]), "alerts": int(count)})
                         for node, a, count in zip(nodes.index, nodes["first"], nodes["nunique"]))
    nxt = steps.shift(-1)
    same = (nxt["occ"] == steps["occ"]).to_numpy()
    edges = pd.DataFrame({"src": steps["node"][same], "dst": nxt["node"][same], "time": nxt["time"][same],
                          "pattern": steps["pattern"][same].astype(int)})
    spans = edges.groupby(["src", "dst"], sort=True)["time"].agg(["size", "min", "max"])
    unique = edges.drop_duplicates(["src", "dst", "pattern"]).sort_values("pattern", kind="stable")
    ids = unique["pattern"].astype(str).groupby([unique["src"], unique["dst"]]).agg(";".join)
    first, last = (spans[c].dt.strftime(ISO) for c in ("min", "max"))
    graph.add_edges_from((src, dst, {"count": int(count), "first_time": f, "last_time": t, "patterns": ids[src, dst]})
                         for (src, dst), count, f, t in zip(spans.index, spans["size"], first, last))
    return graph


def _occurrence_steps(occ: Occurrences, keep_pattern: np.ndarray) -> pd.DataFrame:
    """One row per (occurrence, alert) of the kept patterns, in step order: each occurrence's own
    alerts (``occ_steps``), not every alert of its pattern between its first and last alert,
    which may belong to another occurrence of the pattern that interleaves with it."""
    kept = np.flatnonzero(keep_pattern[occ.occ_pattern])
    size = occ.occ_size[kept]
    return pd.DataFrame({"occ": np.repeat(kept, size), "pattern": np.repeat(occ.occ_pattern[kept], size),
                         "alert": occ.occ_steps[occ.step_ranges(kept)]})
