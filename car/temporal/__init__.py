"""Temporal dependency of alerts: context tree, hierarchical Pitman-Yor model, pattern search.

From alerts (symbols, sequence, times), sorted with `sequence_order`:

    tree = ContextTree.build(symbols, sequence, depth=6)
    model = PitmanYorTree(depth=6); model.fit(tree)          # or minimise model.loss(counts)
    surprise = model.surprise(tree)                          # (n,) nats, leave-one-out
    patterns = find_patterns(tree, model, times=times, window=3600.0)
    occ = pattern_occurrences(patterns, symbols, sequence, times, window=3600.0, max_gap=4)
"""

from car.temporal.context_tree import (
    ChainCounts,
    ContextTree,
    Level,
    histories,
    sequence_order,
    sequence_positions,
)
from car.temporal.patterns import Occurrences, Pattern, dependency_scores, find_patterns, pattern_occurrences
from car.temporal.pitman_yor import PRIORS, PitmanYorTree

__all__ = [
    "PRIORS",
    "ChainCounts",
    "ContextTree",
    "Level",
    "Occurrences",
    "Pattern",
    "PitmanYorTree",
    "dependency_scores",
    "find_patterns",
    "histories",
    "pattern_occurrences",
    "sequence_order",
    "sequence_positions",
]
