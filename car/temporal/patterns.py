"""Candidate attack patterns: breadth-first search for strongly dependent symbol successions, and
their occurrences.

An occurrence of pattern (s_1, ..., s_k) in a sequence is a list of alerts i_1 < ... < i_k of that
sequence with those symbols, where i_{j+1} is the FIRST alert with symbol s_{j+1} after i_j
(greedy), optionally i_{j+1} - i_j <= max_gap and t[i_k] - t[i_1] <= window. Starts that reach the
same last alert are one occurrence (the one with the latest start, i.e. the tightest span).

Two ways to count successions in `find_patterns`:

* ``max_gap=1`` (contiguous): the steps are consecutive alerts, i.e. paths in the context tree;
  P(s_k | s_1..s_{k-1}) is the Pitman-Yor predictive of the tree (full backoff hierarchy) and
  the support is c(s_1..s_{k-1}, s_k).
* ``max_gap=g > 1`` (gapped): up to g-1 unrelated alerts may sit between two steps, as when an
  attack is interleaved with noise. The conditional is the rate at which a prefix occurrence is
  followed by s_k within g alerts, shrunk toward the chance rate q0(s_k) (the rate at which s_k
  follows a random alert within g alerts) by the Pitman-Yor rule on this binary outcome, with the
  model's d and theta of depth k-1. Lifts are relative to q0.

Under interleaved noise only the gapped count finds planted patterns (see tests/temporal/test_patterns.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from car.progress import Progress
from car.temporal.context_tree import ContextTree, sequence_positions
from car.temporal.pitman_yor import PitmanYorTree

SCORES = ("chain", "geometric", "log_lift")
BASELINES = ("global", "sequence")  # what a gapped lift is relative to (find_patterns)


@dataclass(frozen=True)
class Pattern:
    """An ordered alert pattern (k >= 2 steps).

    cond_probs[j-2] = P(s_j | s_1..s_{j-1}) and lifts[j-2] = that / P(s_j), for j = 2..k.
    support: number of occurrences; dependency: score in [0, 1] (see `dependency_scores`).
    """

    symbols: tuple[int, ...]
    dependency: float
    support: int
    cond_probs: tuple[float, ...]
    lifts: tuple[float, ...]


@dataclass(frozen=True)
class Occurrences:
    """Occurrences of L patterns.

    alert_idx, pattern_idx: (nnz,) int64, the nonzeros of F (alert j is a step of an occurrence
        of pattern l), unique pairs sorted by (pattern, alert).
    occ_pattern: (o,) int64, each occurrence's pattern; sorted by (pattern, first alert).
    count: (L,) int64 occurrences per pattern.
    occ_steps: (sum of occ_size,) int64, the alerts of each occurrence in step order, occurrence
        after occurrence (occurrences of one pattern may interleave, so the pattern's alerts
        between an occurrence's first and last alert need not all be its own).
    occ_size: (o,) int64, how many of ``occ_steps`` each occurrence holds.
    """

    alert_idx: np.ndarray
    pattern_idx: np.ndarray
    occ_pattern: np.ndarray
    count: np.ndarray
    occ_steps: np.ndarray
    occ_size: np.ndarray

    @property
    def occ_first(self) -> np.ndarray:
        """(o,) the index of each occurrence's first alert."""
        return self.occ_steps[np.cumsum(self.occ_size) - self.occ_size]

    @property
    def occ_last(self) -> np.ndarray:
        """(o,) the index of each occurrence's last alert."""
        return self.occ_steps[np.cumsum(self.occ_size) - 1]

    def step_ranges(self, occs: np.ndarray) -> np.ndarray:
        """Indices into ``occ_steps`` of the occurrences ``occs``, concatenated in that order."""
        offset = np.r_[0, np.cumsum(self.occ_size)]
        return concatenated_ranges(offset[occs], offset[np.asarray(occs) + 1])

    def subset(self, patterns: np.ndarray) -> Occurrences:
        """The occurrences of the patterns ``patterns`` (ascending indices), renumbered 0, 1, ...:
        what `pattern_occurrences` gives for those patterns alone."""
        new = np.full(len(self.count), -1)
        new[patterns] = np.arange(len(patterns))
        pairs, occs = new[self.pattern_idx] >= 0, new[self.occ_pattern] >= 0
        return Occurrences(self.alert_idx[pairs], new[self.pattern_idx[pairs]], new[self.occ_pattern[occs]],
                           self.count[patterns], self.occ_steps[self.step_ranges(np.flatnonzero(occs))], self.occ_size[occs])


def dependency_scores(
    cond: np.ndarray, lift: np.ndarray, support: np.ndarray, n_alerts: int,
    score: str = "log_lift", rarity_weight: float = 0.0,
) -> np.ndarray:
    """Dependency in [0, 1] of m patterns from their step conditionals and lifts (m, k-1) and support (m,).

    chain = prod P(s_j|prefix); geometric = its geometric mean; log_lift = 1 - 1/(geometric mean
    lift), i.e. the average log-lift squashed to [0, 1). With rarity_weight w > 0 the score becomes
    score^(1-w) * rarity^w, rarity = 1 - log(support) / log(n_alerts), so that frequent routine
    (cron jobs, updates) ranks below rare dependent patterns.
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    if score == "chain":
        base = np.prod(cond, axis=1)
    elif score == "geometric":
        base = np.exp(np.log(cond).mean(axis=1))
    else:
        base = np.maximum(1.0 - np.exp(-np.log(lift).mean(axis=1)), 0.0)
    if rarity_weight == 0:
        return base
    rarity = np.clip(1.0 - np.log(np.maximum(support, 1)) / np.log(max(n_alerts, 2)), 0.0, 1.0)
    return base ** (1 - rarity_weight) * rarity**rarity_weight


@dataclass
class _Candidates:
    """Extensions (row of the prefix, next symbol) with at least min_support occurrences: support,
    conditional and lift, (c,) each."""

    row: np.ndarray
    symbol: np.ndarray
    support: np.ndarray
    cond: np.ndarray
    lift: np.ndarray
    occ: _Occ | None = None


@dataclass
class _Occ:
    """Occurrences of the frontier prefixes: prefix row, first and last alert, (o,) each."""

    row: np.ndarray
    first: np.ndarray
    last: np.ndarray

    def take(self, keep: np.ndarray) -> _Occ:
        """Occurrences of the kept rows (boolean over rows), rows renumbered."""
        new_row = np.cumsum(keep) - 1
        mask = keep[self.row]
        return _Occ(new_row[self.row[mask]], self.first[mask], self.last[mask])


class _TreeCounter:
    """Contiguous successions: context-tree counts and the Pitman-Yor predictive."""

    def __init__(self, tree: ContextTree, model: PitmanYorTree) -> None:
        self.tree, self.model = tree, model
        with torch.no_grad():
            self.unigram = model.predict(tree, ()).numpy().astype(np.float64)

    def first(self, min_support: int) -> tuple[np.ndarray, None]:
        root = self.tree.levels[0]
        return root.entry_symbol[root.entry_count >= min_support], None

    def extend(self, prefixes: np.ndarray, occ: _Occ | None, min_support: int) -> _Candidates:
        k = prefixes.shape[1]
        if k > self.tree.depth:
            return _empty_candidates()
        history = prefixes[:, ::-1]
        level = self.tree.levels[k]
        node = self.tree.lookup(history)[:, k]
        rows = np.flatnonzero(node >= 0)
        start, stop = level.node_start[node[rows]], level.node_start[node[rows] + 1]
        entry = concatenated_ranges(start, stop)
        row = np.repeat(rows, stop - start)
        keep = level.entry_count[entry] >= min_support
        row, entry = row[keep], entry[keep]
        symbol = level.entry_symbol[entry]
        with torch.no_grad():
            cond = self.model.prob(self.tree, history[row], symbol).numpy().astype(np.float64)
        return _Candidates(row, symbol, level.entry_count[entry], cond, cond / self.unigram[symbol])


class _GappedCounter:
    """Gapped successions: s_k within max_gap alerts after the prefix occurrence's last step."""

    def __init__(self, tree: ContextTree, model: PitmanYorTree, max_gap: int,
                 times: np.ndarray | None, window: float | None, per_sequence: bool = False) -> None:
        if window is not None and times is None:
            raise ValueError("a window needs times")
        self.symbols, self.pos = tree.symbols, tree.pos
        self.times, self.window, self.max_gap, self.per_sequence = times, window, max_gap, per_sequence
        self.base, self.n_symbols = tree.base, tree.n_symbols
        with torch.no_grad():
            self.d, self.theta = model.discount().numpy(), model.strength().numpy()
        every = np.arange(len(self.symbols))
        occ, symbol, _ = self._follow(every, every)
        self.chance = np.bincount(symbol, minlength=self.n_symbols) / max(len(every), 1)
        # Per-sequence chance rates: how often s follows an alert of that sequence within max_gap.
        self.seq = np.cumsum(self.pos == 0) - 1
        seq_len = np.bincount(self.seq)
        self.seq_key, counts = np.unique(self.seq[occ] * self.base + symbol, return_counts=True)
        self.seq_chance = counts / seq_len[self.seq_key // self.base]

    def _follow(self, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(occurrence, symbol, alert) for each symbol's first alert within max_gap after ``last``."""
        gap = np.arange(1, self.max_gap + 1)[:, None]
        nxt = last + gap  # (max_gap, o)
        ok = nxt < len(self.symbols)
        nxt = np.where(ok, nxt, 0)
        ok &= self.pos[nxt] == self.pos[last] + gap
        if self.window is not None:
            ok &= self.times[nxt] - self.times[first] <= self.window
        symbol = np.where(ok, self.symbols[nxt], -1)
        for g in range(1, self.max_gap):  # keep the smallest gap of each (occurrence, symbol)
            ok[g] &= (symbol[:g] != symbol[g]).all(axis=0)
        g, occ = np.nonzero(ok)
        return occ, symbol[g, occ], nxt[g, occ]

    def _sequence_chance(self, occ: _Occ, row: np.ndarray, symbol: np.ndarray) -> np.ndarray:
        """Chance rate of each candidate (row, symbol), sorted by row, in the sequences where its
        prefix occurs: the mean over the prefix's occurrences of the per-sequence rate of ``symbol``, (c,)."""
        width = self.seq.max() + 1
        key, n = np.unique(occ.row * width + self.seq[occ.first], return_counts=True)
        per_row, per_seq = key // width, key % width  # sorted by (row, sequence)
        # every (row, sequence) joined with each candidate of its row (a one-to-many join): the
        # lookups ascend within a row, which searchsorted is faster on
        lo, hi = np.searchsorted(row, per_row), np.searchsorted(row, per_row, side="right")
        c, at_key = concatenated_ranges(lo, hi), np.repeat(np.arange(len(key)), hi - lo)
        look = per_seq[at_key] * self.base + symbol[c]
        at = np.minimum(np.searchsorted(self.seq_key, look), len(self.seq_key) - 1)
        rate = np.where(self.seq_key[at] == look, self.seq_chance[at], 0.0)
        # bincount adds each candidate's terms in array order, i.e. by ascending sequence
        total = np.bincount(c, weights=n[at_key] * rate, minlength=len(row))
        q0 = total / np.bincount(occ.row, minlength=row.max(initial=-1) + 1)[row]
        return np.maximum(q0, self.chance[symbol] * 1e-3)

    def first(self, min_support: int) -> tuple[np.ndarray, _Occ]:
        symbols = np.flatnonzero(np.bincount(self.symbols, minlength=self.n_symbols) >= min_support)
        row_of = np.full(self.n_symbols, -1)
        row_of[symbols] = np.arange(len(symbols))
        alerts = np.flatnonzero(row_of[self.symbols] >= 0)
        return symbols, _Occ(row_of[self.symbols[alerts]], alerts, alerts)

    def _successions(self, occ: _Occ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The prefix occurrences extended by one step, (pair = row * base + symbol, first, last
        alert), sorted by (pair, last); starts reaching the same (pair, last) are one occurrence,
        the latest start."""
        o, symbol, alert = self._follow(occ.first, occ.last)
        n = len(self.symbols)
        key = (occ.row[o] * self.base + symbol) * n + alert  # < beam * base * n: 1.5e16 at 3 M alerts of 1,000 types
        order = np.argsort(key)
        key, first = key[order], occ.first[o[order]]
        start = _run_starts(key)
        pair, alert = np.divmod(key[start], n)
        return pair, np.maximum.reduceat(first, start), alert

    def extend(self, prefixes: np.ndarray, occ: _Occ, min_support: int) -> _Candidates:
        m, k = prefixes.shape
        pair, first, alert = self._successions(occ)
        start = _run_starts(pair)
        support = np.diff(start, append=len(pair))
        frequent = support >= min_support
        cand_occ = _Occ(np.repeat(np.arange(len(start)), support), first, alert).take(frequent)
        cand, support = pair[start][frequent], support[frequent]
        row, symbol = cand // self.base, cand % self.base
        n_occ = np.bincount(occ.row, minlength=m)[row]
        depth = min(k, len(self.d) - 1)
        d, theta = self.d[depth], self.theta[depth]
        q0 = self._sequence_chance(occ, row, symbol) if self.per_sequence else self.chance[symbol]
        # Pitman-Yor rule on the binary outcome "followed by s" (always seen here) or "not" (seen
        # unless every occurrence is followed), with base rate q0.
        n_types = 1 + (support < n_occ)
        cond = (support - d + (theta + d * n_types) * q0) / (theta + n_occ)
        return _Candidates(row, symbol, support, cond, cond / q0, cand_occ)


def find_patterns(
    tree: ContextTree,
    model: PitmanYorTree,
    k_max: int = 5,
    min_support: int = 5,
    min_lift: float = 3.0,
    min_step_lift: float = 1.0,
    max_patterns: int = 100,
    score: str = "log_lift",
    rarity_weight: float = 0.0,
    max_gap: int = 4,
    times: np.ndarray | None = None,
    window: float | None = None,
    beam: int = 5000,
    suppress_subpatterns: bool = True,
    baseline: str = "global",
) -> list[Pattern]:
    """Breadth-first search for patterns of 2..k_max steps, best dependency first.

    A prefix s_1..s_{k-1} is extended by s_k where the extension has at least ``min_support``
    occurrences and lift P(s_k | s_1..s_{k-1}) / P(s_k) >= ``min_step_lift``; at most ``beam``
    prefixes (highest lift) are extended per level. A pattern is reported only if its last step
    has lift >= ``min_lift``: a weak step may lead to strong ones (a common first symbol predicts
    little, the steps after it may predict much), but a pattern does not end in a weak step.

    max_gap: 1 = contiguous steps (context-tree paths, k_max capped at tree depth + 1); g > 1 =
    gapped successions (module doc). times (n,) seconds, aligned with the tree's alerts, and
    window (seconds) bound an occurrence's span (gapped only). score, rarity_weight: see
    `dependency_scores`. suppress_subpatterns: drop a pattern that is an ordered subsequence of a
    better-scored kept one (its sub-steps add no scenario). baseline (gapped only): the chance
    rate a lift is relative to: ``global`` (all sequences) or ``sequence`` (the sequences where
    the prefix occurs, so that a host's own routine is not mistaken for dependency). Support = the pattern's number of
    occurrences as `pattern_occurrences` counts them with the same max_gap and window.
    """
    counter = (_TreeCounter(tree, model) if max_gap == 1
               else _GappedCounter(tree, model, max_gap, times, window, baseline == "sequence"))
    symbols, occ = counter.first(min_support)
    prefixes = symbols[:, None]
    conds, lifts = np.zeros((len(symbols), 0)), np.zeros((len(symbols), 0))
    found = []
    with Progress("pattern search", k_max - 1, "levels") as progress:
        for level in range(1, k_max):
            if len(prefixes) == 0:
                break
            cand = counter.extend(prefixes, occ, min_support)
            keep = cand.lift >= min_step_lift
            if keep.sum() > beam:
                keep[keep] = cand.lift[keep] >= np.sort(cand.lift[keep])[-beam]
            rows = cand.row[keep]
            prefixes = np.column_stack([prefixes[rows], cand.symbol[keep]])
            conds = np.column_stack([conds[rows], cand.cond[keep]])
            lifts = np.column_stack([lifts[rows], cand.lift[keep]])
            occ = cand.occ.take(keep) if cand.occ is not None else None
            strong = lifts[:, -1] >= min_lift
            found.append((prefixes[strong], conds[strong], lifts[strong], cand.support[keep][strong]))
            progress.update(level, f"{level + 1} steps: {len(cand.row):,} candidates, {len(rows):,} kept, "
                                   f"{int(strong.sum()):,} patterns")
    return _rank(found, len(tree.symbols), score, rarity_weight, max_patterns, suppress_subpatterns)


def _rank(found: list, n_alerts: int, score: str, rarity_weight: float, max_patterns: int,
          suppress_subpatterns: bool) -> list[Pattern]:
    patterns = []
    for prefixes, conds, lifts, support in found:
        dep = dependency_scores(conds, lifts, support, n_alerts, score, rarity_weight)
        patterns += [
            Pattern(tuple(map(int, p)), float(s), int(c), tuple(map(float, q)), tuple(map(float, f)))
            for p, s, c, q, f in zip(prefixes, dep, support, conds, lifts)
        ]
    patterns.sort(key=lambda p: (-p.dependency, -p.support, p.symbols))
    return _without_subpatterns(patterns, max_patterns) if suppress_subpatterns else patterns[:max_patterns]


def _without_subpatterns(patterns: list[Pattern], max_patterns: int) -> list[Pattern]:
    """The first ``max_patterns`` of ``patterns`` that are no ordered subsequence of an earlier kept one."""
    kept: list[Pattern] = []
    holders: dict[int, set[int]] = {}  # symbol -> the kept patterns with that symbol
    for p in patterns:
        if len(kept) == max_patterns:
            break
        sharing = set.intersection(*(holders.get(s, set()) for s in p.symbols))
        if not any(is_subsequence(p.symbols, kept[i].symbols) for i in sharing):
            for s in p.symbols:
                holders.setdefault(s, set()).add(len(kept))
            kept.append(p)
    return kept


def is_subsequence(short: Sequence, long: Sequence) -> bool:
    """Whether the items of ``short`` occur in ``long`` in the same order, gaps allowed."""
    steps = iter(long)
    return all(s in steps for s in short)


def pattern_occurrences(
    patterns: Sequence[Pattern | Sequence[int]],
    symbols: np.ndarray,
    sequence: np.ndarray,
    times: np.ndarray | None = None,
    window: float | None = None,
    max_gap: int | None = None,
) -> Occurrences:
    """Occurrences (module doc) of each pattern in alerts sorted by (sequence, time).

    symbols, sequence: (n,) int64; times: (n,) seconds, needed with ``window`` (max span, seconds);
    max_gap: max index distance between consecutive steps (None = unbounded).
    """
    if window is not None and times is None:
        raise ValueError("a window needs times")
    symbols = np.asarray(symbols, dtype=np.int64)
    n = len(symbols)
    steps_of = [tuple(p.symbols) if isinstance(p, Pattern) else tuple(p) for p in patterns]
    base = max([int(symbols.max(initial=-1)) + 1, *(max(s) + 1 for s in steps_of)])
    seq_id = np.cumsum(sequence_positions(sequence) == 0) - 1
    # Alert indices sorted by (sequence, symbol, index): the next alert with symbol s after i in
    # i's sequence is the successor of (seq_id[i], s, i) in this order.
    order_key = np.sort((seq_id * base + symbols) * n + np.arange(n))
    by_symbol = np.argsort(symbols, kind="stable")
    symbol_start = np.searchsorted(symbols[by_symbol], np.arange(base + 1))
    per_pattern = []
    for steps in steps_of:
        chain = [by_symbol[symbol_start[steps[0]]:symbol_start[steps[0] + 1]]]
        for s in steps[1:]:
            cur = chain[-1]
            group = seq_id[cur] * base + s
            at = np.searchsorted(order_key, group * n + cur, side="right")
            ok = at < n
            at = np.minimum(at, n - 1)
            nxt = order_key[at] % n
            ok &= order_key[at] // n == group
            if max_gap is not None:
                ok &= nxt - cur <= max_gap
            if window is not None:
                ok &= times[nxt] - times[chain[0]] <= window
            chain = [c[ok] for c in chain] + [nxt[ok]]
        last = chain[-1]
        # Greedy chains are monotone in their start, so starts sharing a last alert are adjacent.
        keep = np.ones(len(last), dtype=bool)
        keep[:-1] = last[1:] != last[:-1]
        per_pattern.append(np.stack([c[keep] for c in chain], axis=1))
    return _occurrences(per_pattern, n)


def _occurrences(per_pattern: list[np.ndarray], n: int) -> Occurrences:
    """Occurrences from each pattern's step matrix (o_l, k_l) of alert indices."""
    count = np.array([len(m) for m in per_pattern], dtype=np.int64)
    occ_pattern = np.repeat(np.arange(len(per_pattern), dtype=np.int64), count)
    empty = np.zeros(0, dtype=np.int64)
    alert = np.concatenate([m.ravel() for m in per_pattern] + [empty])
    size = np.repeat(np.array([m.shape[1] for m in per_pattern], dtype=np.int64), count)
    pattern_idx, alert_idx = np.divmod(np.unique(np.repeat(occ_pattern, size) * n + alert), n)
    return Occurrences(alert_idx, pattern_idx, occ_pattern, count, alert, size)


def concatenated_ranges(start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start[r], stop[r]) over r, int64 (sum of stop - start,)."""
    length = stop - start
    offset = np.repeat(start - np.cumsum(length) + length, length)
    return np.arange(length.sum()) + offset


def _run_starts(values: np.ndarray) -> np.ndarray:
    """Where each run of equal values in ``values`` (sorted) starts, (r,) indices."""
    return np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if len(values) else np.zeros(0, np.int64)


def _empty_candidates() -> _Candidates:
    empty = np.zeros(0, dtype=np.int64)
    return _Candidates(empty, empty, empty, np.zeros(0), np.zeros(0))
