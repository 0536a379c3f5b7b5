"""Context tree of alert sequences: per-depth sparse counts of which symbol followed which context.

The depth-k context of alert i is the k symbols before it in its sequence, oldest first
``(s_{i-k}, ..., s_{i-1})``. A context backs off by dropping its OLDEST symbol, so the parent
of a depth-k node is its k-1 most recent symbols and a child extends a node by one older symbol.
An alert with only p < k predecessors in its sequence has no depth-k node: its chain of contexts
stops at depth p (no start-of-sequence padding symbol).

Node ids at depth k are the ranks of ``key = parent_id * B + oldest_symbol`` (B = K + 1) among the
contexts present. They depend only on which contexts occur, never on alert order, so trees built
on disjoint sets of sequences merge by content (`ContextTree.merge`).

Histories (queries of arbitrary contexts) are int64 arrays (m, h), MOST RECENT symbol first,
-1 where the sequence has no symbol that far back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def sequence_order(sequence: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Stable permutation (n,) that sorts alerts by (sequence, time)."""
    return np.lexsort((np.asarray(times), np.asarray(sequence)))


def run_starts(codes: np.ndarray, times: np.ndarray, is_batch: np.ndarray, gap: float) -> np.ndarray:
    """(n,) bool: the alerts that start a run, for alerts in (sequence, time) order.

    A run is a stretch of same-type alerts of one entity, each at most ``gap`` seconds after
    the one before, all in the history or all in the batch. codes (n, m): entity and type in
    columns 0 and 1; times (n,) seconds.
    """
    starts = np.ones(len(codes), dtype=bool)
    starts[1:] = (
        (np.diff(codes[:, 0]) != 0) | (np.diff(codes[:, 1]) != 0) | (is_batch[1:] != is_batch[:-1])
        | (np.diff(times) > gap)
    )
    return starts


def sequence_positions(sequence: np.ndarray) -> np.ndarray:
    """Position (n,) int64 of each alert within its sequence; alerts must be grouped by sequence."""
    sequence = np.asarray(sequence)
    n = len(sequence)
    is_start = np.ones(n, dtype=bool)
    is_start[1:] = sequence[1:] != sequence[:-1]
    starts = np.flatnonzero(is_start)
    if len(starts) != len(np.unique(sequence)):
        raise ValueError("alerts are not grouped by sequence: sort them with sequence_order(sequence, times)")
    return np.arange(n, dtype=np.int64) - starts[np.cumsum(is_start) - 1]


def histories(symbols: np.ndarray, sequence: np.ndarray, depth: int) -> np.ndarray:
    """Preceding symbols (n, depth), most recent first: [i, j] = symbol j+1 steps back, -1 if none."""
    symbols = np.asarray(symbols, dtype=np.int64)
    pos = sequence_positions(sequence)
    out = np.full((len(symbols), depth), -1, dtype=np.int64)
    for j in range(depth):
        idx = np.flatnonzero(pos > j)
        out[idx, j] = symbols[idx - j - 1]
    return out


@dataclass(frozen=True)
class Level:
    """Nodes and counts at one depth. Node ids are 0..m-1; entries are sorted by (node, symbol).

    key: (m,) sorted, parent id * B + oldest symbol (root level: [0]).
    entry_key: (e,) node * B + symbol; entry_node, entry_symbol, entry_count: (e,), count c(u,s) >= 1.
    node_start: (m+1,) the entries of node u are node_start[u]:node_start[u+1].
    node_total: (m,) c(u,.); node_types: (m,) t(u,.) = number of s with c(u,s) > 0.
    """

    key: np.ndarray
    entry_key: np.ndarray
    entry_node: np.ndarray
    entry_symbol: np.ndarray
    entry_count: np.ndarray
    node_start: np.ndarray
    node_total: np.ndarray
    node_types: np.ndarray

    @classmethod
    def from_keys(cls, key: np.ndarray, entry_key: np.ndarray, entry_count: np.ndarray, base: int) -> Level:
        """Level from sorted unique node keys and sorted unique entry keys with their counts."""
        m = len(key)
        entry_node = entry_key // base
        node_start = np.searchsorted(entry_node, np.arange(m + 1))
        return cls(
            key=key,
            entry_key=entry_key,
            entry_node=entry_node,
            entry_symbol=entry_key % base,
            entry_count=entry_count.astype(np.int64),
            node_start=node_start,
            node_total=np.bincount(entry_node, weights=entry_count, minlength=m).astype(np.int64),
            node_types=np.diff(node_start),
        )

    @property
    def n_nodes(self) -> int:
        """Number of contexts at this depth."""
        return len(self.key)


COUNT_ARRAYS = ("c_s", "c_u", "t_s", "t_u")  # the (D+1, m) arrays of ChainCounts, in field order


@dataclass(frozen=True)
class ChainCounts:
    """Counts along the context chain of m queries (symbol s after context u), arrays (D+1, m) float32
    (numpy from the tree; torch tensors on the training device in a training step).

    Row k describes the query's depth-k context u: c_s = c(u,s), c_u = c(u,.), t_s = t(u,s),
    t_u = t(u,.). c_u = 0 where the query has no depth-k context or its counts are all removed;
    the model then passes the parent's probability through.
    """

    n_symbols: int
    c_s: np.ndarray | torch.Tensor
    c_u: np.ndarray | torch.Tensor
    t_s: np.ndarray | torch.Tensor
    t_u: np.ndarray | torch.Tensor

    @classmethod
    def empty(cls, n_symbols: int, depth: int, m: int) -> ChainCounts:
        """All-zero counts of m queries, depths 0..depth (numpy float32)."""
        return cls(n_symbols, *(np.zeros((depth + 1, m), dtype=np.float32) for _ in range(4)))

    @property
    def depth(self) -> int:
        """Deepest context depth D (the arrays have D+1 rows)."""
        return self.c_s.shape[0] - 1


@dataclass(frozen=True)
class ContextTree:
    """Context tree over alerts sorted by (sequence, time), depths 0..D, tables t(u,s) = min(1, c(u,s)).

    symbols, pos: (n,) each alert's symbol and position within its sequence.
    entry_of: (n, D+1) index into ``levels[k]`` entries of (alert's depth-k context, its symbol),
        -1 where the alert has no depth-k context; gives c(u,s_i), c(u,.), t(u,.) in O(1).
    """

    n_symbols: int
    levels: list[Level]
    symbols: np.ndarray
    pos: np.ndarray
    entry_of: np.ndarray

    @property
    def depth(self) -> int:
        """Deepest context depth D."""
        return len(self.levels) - 1

    @property
    def base(self) -> int:
        """Radix B = K + 1 of the node keys (K symbols plus the unseen slot)."""
        return self.n_symbols + 1

    @classmethod
    def build(cls, symbols: np.ndarray, sequence: np.ndarray, depth: int, n_symbols: int | None = None) -> ContextTree:
        """Count symbols after each context of length 0..depth; symbols in [0, n_symbols)."""
        symbols = np.asarray(symbols, dtype=np.int64)
        k_sym = int(symbols.max(initial=-1)) + 1 if n_symbols is None else n_symbols
        if len(symbols) and (symbols.min() < 0 or symbols.max() >= k_sym):
            raise ValueError(f"symbols must lie in [0, {k_sym})")
        base = k_sym + 1
        pos = sequence_positions(sequence)
        n = len(symbols)
        node = np.zeros(n, dtype=np.int64)
        entry_of = np.full((n, depth + 1), -1, dtype=np.int64)
        levels = []
        for k in range(depth + 1):
            idx = np.flatnonzero(pos >= k)
            if k == 0:
                key = np.zeros(1, dtype=np.int64)
            else:
                key, node_idx = np.unique(node[idx] * base + symbols[idx - k], return_inverse=True)
                node[idx] = node_idx
            entry_key, entry_idx, count = np.unique(
                node[idx] * base + symbols[idx], return_inverse=True, return_counts=True
            )
            entry_of[idx, k] = entry_idx
            levels.append(Level.from_keys(key, entry_key, count, base))
        return cls(k_sym, levels, symbols, pos, entry_of)

    @staticmethod
    def merge(a: ContextTree, b: ContextTree) -> ContextTree:
        """Tree of the alerts of ``a`` followed by those of ``b`` (disjoint sets of sequences)."""
        if a.depth != b.depth:
            raise ValueError(f"cannot merge trees of depth {a.depth} and {b.depth}")
        k_sym = max(a.n_symbols, b.n_symbols)
        base = k_sym + 1
        node_map_a = node_map_b = np.zeros(1, dtype=np.int64)
        levels, entry_cols = [], []
        for k, (la, lb) in enumerate(zip(a.levels, b.levels)):
            if k == 0:
                key = np.zeros(1, dtype=np.int64)
            else:
                ka = node_map_a[la.key // a.base] * base + la.key % a.base
                kb = node_map_b[lb.key // b.base] * base + lb.key % b.base
                key, inv = np.unique(np.concatenate([ka, kb]), return_inverse=True)
                node_map_a, node_map_b = inv[: len(ka)], inv[len(ka):]
            ea = node_map_a[la.entry_node] * base + la.entry_symbol
            eb = node_map_b[lb.entry_node] * base + lb.entry_symbol
            entry_key, inv = np.unique(np.concatenate([ea, eb]), return_inverse=True)
            count = np.bincount(inv, weights=np.concatenate([la.entry_count, lb.entry_count]))
            levels.append(Level.from_keys(key, entry_key, count, base))
            entry_cols.append(np.concatenate([
                _remap(a.entry_of[:, k], inv[: len(ea)]), _remap(b.entry_of[:, k], inv[len(ea):])
            ]))
        return ContextTree(
            k_sym, levels, np.concatenate([a.symbols, b.symbols]), np.concatenate([a.pos, b.pos]),
            np.stack(entry_cols, axis=1),
        )

    @staticmethod
    def merge_all(trees: Sequence[ContextTree]) -> ContextTree:
        """Tree of the alerts of ``trees`` in the given order (disjoint sets of sequences), merged
        pairwise in log2(len(trees)) rounds so that no alert is copied more than that often."""
        if not trees:
            raise ValueError("merge_all needs at least one tree")
        merged = list(trees)
        while len(merged) > 1:
            merged = [ContextTree.merge(*merged[i:i + 2]) if i + 1 < len(merged) else merged[i]
                      for i in range(0, len(merged), 2)]
        return merged[0]

    def lookup(self, history: np.ndarray) -> np.ndarray:
        """Node ids (m, D+1) of each history's contexts at depths 0..D, -1 where absent from the tree."""
        history = np.atleast_2d(np.asarray(history, dtype=np.int64))
        m = len(history)
        nodes = np.full((m, self.depth + 1), -1, dtype=np.int64)
        nodes[:, 0] = 0
        for k in range(1, min(history.shape[1], self.depth) + 1):
            prev, sym = nodes[:, k - 1], history[:, k - 1]
            key = prev * self.base + sym
            level_key = self.levels[k].key
            if len(level_key) == 0:
                break
            at = np.minimum(np.searchsorted(level_key, key), len(level_key) - 1)
            ok = (prev >= 0) & (sym >= 0) & (sym < self.n_symbols) & (level_key[at] == key)
            nodes[:, k] = np.where(ok, at, -1)
        return nodes

    def find(self, context: Sequence[int]) -> int:
        """Node id of ``context`` (oldest first) at depth len(context), or -1 if it never occurred."""
        if len(context) > self.depth:
            return -1
        return int(self.lookup(np.asarray(context[::-1], dtype=np.int64).reshape(1, -1))[0, len(context)])

    def next_counts(self, context: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Symbols that followed ``context`` (oldest first) and their counts; empty if unseen."""
        node = self.find(context)
        if node < 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        level = self.levels[len(context)]
        span = slice(level.node_start[node], level.node_start[node + 1])
        return level.entry_symbol[span], level.entry_count[span]

    def children(self, depth: int, node: int) -> np.ndarray:
        """Ids of the depth+1 nodes that extend ``node`` by one older symbol."""
        key = self.levels[depth + 1].key
        return np.arange(*np.searchsorted(key, [node * self.base, (node + 1) * self.base]))

    def contexts(self, depth: int) -> np.ndarray:
        """Symbol content (m_k, depth) of every node at ``depth``, oldest first."""
        node = np.arange(self.levels[depth].n_nodes)
        out = np.empty((len(node), depth), dtype=np.int64)
        for j in range(depth, 0, -1):
            key = self.levels[j].key[node]
            out[:, depth - j] = key % self.base
            node = key // self.base
        return out

    def chain_counts(self, leave_one_out: bool = True) -> ChainCounts:
        """Counts along every alert's own chain; leave-one-out removes the alert's own count."""
        out = ChainCounts.empty(self.n_symbols, self.depth, len(self.symbols))
        for k, level in enumerate(self.levels):
            rows = np.flatnonzero(self.entry_of[:, k] >= 0)
            entry = self.entry_of[rows, k]
            count = level.entry_count[entry]
            node = level.entry_node[entry]
            total, types = level.node_total[node], level.node_types[node]
            if leave_one_out:
                types = types - (count == 1)
                count, total = count - 1, total - 1
            out.c_s[k, rows], out.c_u[k, rows], out.t_u[k, rows] = count, total, types
        np.minimum(out.c_s, 1.0, out=out.t_s)
        return out

    def query_counts(self, history: np.ndarray, next_symbols: np.ndarray) -> ChainCounts:
        """Counts along the chains of m queries: symbol next_symbols[r] after history[r] (most recent first).

        next_symbols may be n_symbols (the unseen slot), which has no counts anywhere.
        """
        next_symbols = np.asarray(next_symbols, dtype=np.int64)
        nodes = self.lookup(history)
        out = ChainCounts.empty(self.n_symbols, self.depth, len(next_symbols))
        for k, level in enumerate(self.levels):
            rows = np.flatnonzero(nodes[:, k] >= 0)
            node = nodes[rows, k]
            key = node * self.base + next_symbols[rows]
            at = np.minimum(np.searchsorted(level.entry_key, key), len(level.entry_key) - 1)
            out.c_s[k, rows] = np.where(level.entry_key[at] == key, level.entry_count[at], 0)
            out.c_u[k, rows], out.t_u[k, rows] = level.node_total[node], level.node_types[node]
        np.minimum(out.c_s, 1.0, out=out.t_s)
        return out


def _remap(entry: np.ndarray, new_ids: np.ndarray) -> np.ndarray:
    """Entry indices mapped to merged ids, keeping -1 for absent."""
    out = np.full(len(entry), -1, dtype=np.int64)
    ok = entry >= 0
    out[ok] = new_ids[entry[ok]]
    return out
