"""Sparse content similarity between alerts from APE entity embeddings.

``Sim(i, j) = (1/m) sum_a (1 + cos(v_{i,a}, v_{j,a})) / 2`` in [0, 1]: 1 for identical
tuples (an unknown value has a zero vector, so its cosine counts as 0).

Broadcast to alerts: computed on the u distinct tuples (k nearest other tuples each), then
mapped to alerts without the O(n^2) cliques of alerts sharing a tuple. Each tuple's first
alert (in input order) is its representative: every other alert with that tuple is linked
to it with weight 1 (a star, so any two of them are two unit edges apart), and the tuple
k-NN edges link representatives. The graph has (n - u) + O(u k) undirected edges, and a
graph-Laplacian smoother on it gives alerts with one tuple (nearly) the same score while
the tuple-level neighbourhoods carry over. :func:`tuple_knn` returns the tuple-level graph
itself for solvers that work on tuples with ``inverse``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from car.content.ape import EntityEmbedding

Coo = tuple[np.ndarray, np.ndarray, np.ndarray]


@torch.no_grad()
def tuple_knn(model: EntityEmbedding, tuples: np.ndarray, k: int = 10, chunk_size: int = 1024,
              max_exact: int = 20_000, block_size: int = 2048) -> Coo:
    """Symmetric k-NN graph over distinct tuples (u, m): COO ``(row, col, weight)``.

    Each tuple keeps its ``min(k, u-1)`` most similar other tuples (ties by index via
    ``torch.topk``); the union with the transpose makes the graph symmetric, so a tuple
    has at least that many neighbours. No self loops; weights float64 in [0, 1].
    Exact search costs u^2: above ``max_exact`` tuples, neighbours are searched within
    blocks of at most ``block_size`` tuples sharing attribute values (see `tuple_blocks`), so
    cost is at most u * block_size (blocks of 20,000 took 55 of the 64 s of ranking 1 M
    simulated alerts; blocks of 2,048 take under 10 s, and under 4 s searched in padded batches).
    """
    tuples = np.asarray(tuples)
    u, m = np.shape(tuples)
    x = _unit_vectors(model, tuples)
    if u > max_exact:
        row, col, sim = _blocked_knn(x, tuple_blocks(tuples, block_size), k)
    else:
        row, col, sim = _exact_knn(x, k, chunk_size)
    return _symmetrise(row, col, ((sim.double() + m) / (2 * m)).clamp(0, 1).numpy(), u)


def tuple_blocks(tuples: np.ndarray, max_size: int, column: int = 0) -> list[np.ndarray]:
    """Indices of tuples split by the value of column 0, then 1, ... until each block holds at
    most ``max_size`` tuples (a block still too large after the last column is cut in order)."""
    index = np.arange(len(tuples))
    if len(tuples) <= max_size:
        return [index]
    if column == tuples.shape[1]:
        return np.array_split(index, -(-len(index) // max_size))
    order = np.argsort(tuples[:, column], kind="stable")
    cuts = np.flatnonzero(np.diff(tuples[order, column])) + 1
    blocks = []
    for part in np.split(order, cuts):
        blocks += [part[sub] for sub in tuple_blocks(tuples[part], max_size, column + 1)]
    return blocks


def _unit_vectors(model: EntityEmbedding, tuples: np.ndarray) -> torch.Tensor:
    """Per-attribute unit entity vectors of tuples (u, m), concatenated: (u, m * dim). The dot
    product of two rows is the sum of the m attribute cosines, in [-m, m]."""
    return F.normalize(model.vectors(tuples), dim=-1).reshape(len(tuples), -1)


def _exact_knn(x: torch.Tensor, k: int, chunk_size: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Directed top-``min(k, u-1)`` neighbours of every row of x (u, d) among all other rows:
    (row, col, dot product)."""
    u = len(x)
    k = min(k, u - 1)
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), torch.zeros(0)
    rows, cols, sims = [], [], []
    for start in range(0, u, chunk_size):
        block = x[start : start + chunk_size] @ x.T
        idx = torch.arange(block.shape[0])
        block[idx, start + idx] = -torch.inf
        top = torch.topk(block, k, dim=1)
        rows.append((start + idx).repeat_interleave(k))
        cols.append(top.indices.reshape(-1))
        sims.append(top.values.reshape(-1))
    return torch.cat(rows).numpy(), torch.cat(cols).numpy(), torch.cat(sims)


def _blocked_knn(x: torch.Tensor, blocks: list[np.ndarray], k: int,
                 max_cells: int = 1 << 24) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """`_exact_knn` within each block of row indices. Blocks padded to one width (the next
    power of two up to 64, then the next multiple of 64) are searched together, up to
    ``max_cells`` similarities at a time: one small block per call cost a millisecond of
    overhead, and 1 M simulated alerts have 12,000 blocks."""
    sizes = np.array([len(b) for b in blocks])
    width = np.where(sizes <= 64, 1 << np.ceil(np.log2(np.maximum(sizes, 2))).astype(np.int64), -(-sizes // 64) * 64)
    rows, cols, sims = [], [], []
    for w in np.unique(width):
        members = np.flatnonzero(width == w)
        per_call = max(1, max_cells // int(w * w))
        for start in range(0, len(members), per_call):
            group = members[start : start + per_call]
            index = torch.from_numpy(_padded(blocks, group, int(w)))
            valid = index >= 0
            vectors = x[index.clamp(min=0)]
            sim = vectors @ vectors.transpose(1, 2)
            sim.masked_fill_(~valid.unsqueeze(1), -torch.inf)
            sim.diagonal(dim1=1, dim2=2).fill_(-torch.inf)
            top = torch.topk(sim, min(k, int(w) - 1), dim=2)
            keep = torch.isfinite(top.values) & valid.unsqueeze(2)
            block, row, _ = keep.nonzero(as_tuple=True)
            rows.append(index[block, row])
            cols.append(index[block, top.indices[keep]])
            sims.append(top.values[keep])
    return torch.cat(rows).numpy(), torch.cat(cols).numpy(), torch.cat(sims)


def _padded(blocks: list[np.ndarray], group: np.ndarray, width: int) -> np.ndarray:
    """Blocks ``group`` as rows of a (len(group), width) index matrix, padded with -1."""
    lengths = np.array([len(blocks[g]) for g in group])
    block = np.repeat(np.arange(len(group)), lengths)
    within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out = np.full((len(group), width), -1, dtype=np.int64)
    out[block, within] = np.concatenate([blocks[g] for g in group])
    return out


def knn_similarity(
    model: EntityEmbedding, tuples: np.ndarray, inverse: np.ndarray, k: int = 10, chunk_size: int = 1024
) -> Coo:
    """Sparse symmetric alert-alert similarity: COO ``(row, col, weight)`` over n alerts.

    ``tuples`` (u, m) distinct tuples and ``inverse`` (n,) each alert's tuple, as from
    ``unique_tuples``. Tuple k-NN edges join representatives; other alerts join their
    representative with weight 1 (see module docstring). No self loops.
    """
    inverse = np.asarray(inverse, dtype=np.int64)
    used, first = np.unique(inverse, return_index=True)
    t_row, t_col, t_w = tuple_knn(model, np.asarray(tuples)[used], k, chunk_size)
    rep = first[np.searchsorted(used, inverse)]
    alerts = np.arange(len(inverse), dtype=np.int64)
    member = alerts != rep
    star_a, star_b = alerts[member], rep[member]
    row = np.concatenate([first[t_row], star_a, star_b])
    col = np.concatenate([first[t_col], star_b, star_a])
    weight = np.concatenate([t_w, np.ones(2 * len(star_a))])
    return row, col, weight


def edge_preserving(sim: Coo, signal: np.ndarray, bandwidth: float) -> Coo:
    """Similarity that keeps apart alerts whose ``signal`` (n,) differs (bilateral filtering):
    each weight of ``sim`` (COO over n alerts) times ``exp(-|signal_i - signal_j| / bandwidth)``.
    With the value surprise as the signal, an alert carrying a value unusual for its type is
    not averaged with look-alikes that lack it."""
    row, col, weight = sim
    return row, col, weight * np.exp(-np.abs(signal[row] - signal[col]) / bandwidth)


def _symmetrise(row: np.ndarray, col: np.ndarray, weight: np.ndarray, size: int) -> Coo:
    """Union of a directed COO graph with its transpose; duplicate edges keep the max weight."""
    if not len(row):
        return row, col, weight
    r, c, w = np.concatenate([row, col]), np.concatenate([col, row]), np.concatenate([weight, weight])
    key = r * size + c
    order = np.argsort(key, kind="stable")
    key, w = key[order], w[order]
    start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    return key[start] // size, key[start] % size, np.maximum.reduceat(w, start)
