from collections import Counter

import numpy as np
import pytest

from car.temporal import ContextTree, histories, sequence_order, sequence_positions


def random_alerts(seed: int, n: int = 400, n_seq: int = 7, k: int = 5):
    rng = np.random.default_rng(seed)
    sequence = np.sort(rng.integers(0, n_seq, n))
    return rng.integers(0, k, n), sequence


def brute_force_counts(symbols, sequence, depth):
    """{k: Counter{(context oldest first, symbol): count}} by walking every sequence."""
    counts = {k: Counter() for k in range(depth + 1)}
    for s in np.unique(sequence):
        seq = list(symbols[sequence == s])
        for i, sym in enumerate(seq):
            for k in range(min(i, depth) + 1):
                counts[k][(tuple(seq[i - k:i]), sym)] += 1
    return counts


def tree_counts(tree):
    out = {}
    for k, level in enumerate(tree.levels):
        content = tree.contexts(k)
        out[k] = Counter({
            (tuple(int(x) for x in content[u]), int(s)): int(c)
            for u, s, c in zip(level.entry_node, level.entry_symbol, level.entry_count)
        })
    return out


def test_sequence_order_is_stable_by_sequence_then_time():
    sequence = np.array([2, 1, 2, 1, 1])
    times = np.array([5.0, 3.0, 1.0, 3.0, 0.0])
    order = sequence_order(sequence, times)
    assert order.tolist() == [4, 1, 3, 2, 0]
    assert sequence_positions(sequence[order]).tolist() == [0, 1, 2, 0, 1]


def test_ungrouped_sequences_are_rejected():
    with pytest.raises(ValueError, match="sequence_order"):
        ContextTree.build(np.array([0, 1, 0]), np.array([0, 1, 0]), depth=2)


def test_counts_match_brute_force():
    symbols, sequence = random_alerts(0)
    tree = ContextTree.build(symbols, sequence, depth=3, n_symbols=5)
    assert tree_counts(tree) == brute_force_counts(symbols, sequence, 3)
    for level in tree.levels:
        # c(u,.) and t(u,.) agree with the entries
        assert np.array_equal(level.node_total, np.bincount(level.entry_node, weights=level.entry_count))
        assert np.array_equal(level.node_types, np.bincount(level.entry_node))


def test_alert_chain_stops_at_its_longest_context():
    symbols = np.array([0, 1, 2, 3, 4, 0])
    sequence = np.array([0, 0, 0, 0, 1, 1])
    tree = ContextTree.build(symbols, sequence, depth=2)
    assert (tree.entry_of >= 0).tolist() == [
        [True, False, False], [True, True, False], [True, True, True], [True, True, True],
        [True, False, False], [True, True, False],
    ]
    # the alert's entry is (its context, its own symbol)
    level = tree.levels[2]
    entry = tree.entry_of[3, 2]
    assert level.entry_symbol[entry] == 3
    assert tree.contexts(2)[level.entry_node[entry]].tolist() == [1, 2]


def test_histories_most_recent_first():
    h = histories(np.array([5, 6, 7, 8]), np.array([0, 0, 0, 1]), depth=2)
    assert h.tolist() == [[-1, -1], [5, -1], [6, 5], [-1, -1]]


def test_lookup_find_next_counts_children():
    # a b a b a c
    tree = ContextTree.build(np.array([0, 1, 0, 1, 0, 2]), np.zeros(6, dtype=int), depth=2)
    sym, cnt = tree.next_counts(())
    assert sym.tolist() == [0, 1, 2] and cnt.tolist() == [3, 2, 1]
    sym, cnt = tree.next_counts((0,))
    assert dict(zip(sym.tolist(), cnt.tolist())) == {1: 2, 2: 1}
    sym, cnt = tree.next_counts((1, 0))  # context "b a"
    assert dict(zip(sym.tolist(), cnt.tolist())) == {1: 1, 2: 1}
    assert tree.find((2,)) == -1 and tree.find((0, 0)) == -1 and tree.find((0, 1, 0)) == -1
    assert tree.next_counts((2,))[0].size == 0
    node_a = tree.find((0,))
    children = {tuple(tree.contexts(2)[c]) for c in tree.children(1, node_a)}
    assert children == {(1, 0)}
    nodes = tree.lookup(np.array([[0, 1], [1, -1], [2, 0]]))
    assert nodes[0].tolist() == [0, tree.find((0,)), tree.find((1, 0))]
    assert nodes[1].tolist() == [0, tree.find((1,)), -1]
    assert nodes[2].tolist() == [0, -1, -1]


@pytest.mark.parametrize("split_seq", [2, 5])
def test_merge_of_partitions_equals_whole(split_seq):
    symbols, sequence = random_alerts(1, n=600, n_seq=8, k=6)
    depth = 3
    whole = ContextTree.build(symbols, sequence, depth, n_symbols=6)
    cut = np.searchsorted(sequence, split_seq)
    a = ContextTree.build(symbols[:cut], sequence[:cut], depth, n_symbols=6)
    b = ContextTree.build(symbols[cut:], sequence[cut:], depth, n_symbols=6)
    merged = ContextTree.merge(a, b)
    for lm, lw in zip(merged.levels, whole.levels):
        for name in lw.__dataclass_fields__:
            assert np.array_equal(getattr(lm, name), getattr(lw, name)), name
    assert np.array_equal(merged.entry_of, whole.entry_of)
    # merging in the other order gives the same counts (alerts of b first)
    assert tree_counts(ContextTree.merge(b, a)) == tree_counts(whole)


def test_build_counts_every_alert_of_a_large_input():
    """200,000 alerts over 4,000 sequences, depth 6. Its speed is measured by
    experiments/bench_speed.py (datamodule.ContextTree.build), not asserted here."""
    rng = np.random.default_rng(0)
    n = 200_000
    sequence = np.sort(rng.integers(0, 4000, n))
    symbols = rng.zipf(1.3, n) % 500
    tree = ContextTree.build(symbols, sequence, depth=6, n_symbols=500)
    assert tree.levels[0].node_total[0] == n
