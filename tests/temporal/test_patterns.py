import numpy as np
import pytest

from car.temporal import (
    ContextTree,
    Pattern,
    PitmanYorTree,
    dependency_scores,
    find_patterns,
    pattern_occurrences,
)

A, B, C, X = 0, 1, 2, 3
K = 50


def noisy_sequences(seed: int, plants, n_seq: int = 20, length: int = 500, max_noise: int = 2):
    """Zipf-distributed noise over K symbols with each (pattern, repeats) of ``plants`` written over
    it ``repeats`` times at random places, 0..max_noise noise alerts between consecutive steps."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, K + 1)
    seqs = [rng.choice(K, length, p=weights / weights.sum()) for _ in range(n_seq)]
    for steps, repeats in plants:
        for _ in range(repeats):
            seq, i = seqs[rng.integers(n_seq)], rng.integers(0, length - 30)
            for s in steps:
                seq[i] = s
                i += 1 + rng.integers(0, max_noise + 1)
    return np.concatenate(seqs), np.repeat(np.arange(n_seq), length)


def planted(seed: int):
    """Three patterns of 3, 4, 5 distinct steps. The 5 most frequent noise types are left out:
    a step whose type is ~10% of all alerts carries no detectable dependency."""
    rng = np.random.default_rng(100 + seed)
    return [tuple(int(s) for s in 5 + rng.choice(K - 5, n, replace=False)) for n in (3, 4, 5)]


def fitted(symbols, sequence, depth=4):
    tree = ContextTree.build(symbols, sequence, depth, n_symbols=K)
    model = PitmanYorTree(depth)
    model.fit(tree, epochs=30)
    return tree, model


def recall(plants, patterns, top=10):
    """Planted patterns found, in full or by a prefix of >= 3 steps, among the top patterns."""
    found = [p.symbols for p in patterns[:top]]
    return sum(any(f == p[: len(f)] and len(f) >= min(3, len(p)) for f in found) for p in plants)


# Occurrences ---------------------------------------------------------------------------------
# sequence 0: a x b a c b c at t = 0..6; sequence 1: a a b c at t = 100, 101, 102, 110
SYMBOLS = np.array([A, X, B, A, C, B, C, A, A, B, C])
SEQUENCE = np.array([0] * 7 + [1] * 4)
TIMES = np.array([0, 1, 2, 3, 4, 5, 6, 100, 101, 102, 110], dtype=float)


def test_occurrences_with_gaps():
    occ = pattern_occurrences([(A, B, C), (A, C), (C, A), (C, C)], SYMBOLS, SEQUENCE, TIMES)
    # (a,b,c): 0-2-4 and 3-5-6 in sequence 0; starts 7 and 8 both reach 9-10: one occurrence, 8-9-10.
    # (a,c): 0-4 and 3-4 share their end, keep 3-4; 7-10 and 8-10, keep 8-10.
    # (c,a): no a after a c within a sequence (the a at 7 is in another sequence).
    # (c,c): 4-6; the c at 10, the last alert, has no successor.
    assert occ.count.tolist() == [3, 2, 0, 1]
    assert occ.occ_pattern.tolist() == [0, 0, 0, 1, 1, 3]
    assert occ.occ_first.tolist() == [0, 3, 8, 3, 8, 4]
    assert occ.occ_last.tolist() == [4, 6, 10, 4, 10, 6]
    f = {(int(j), int(l)) for j, l in zip(occ.alert_idx, occ.pattern_idx)}
    assert f == {(j, 0) for j in (0, 2, 3, 4, 5, 6, 8, 9, 10)} | {(j, 1) for j in (3, 4, 8, 10)} | {(4, 3), (6, 3)}
    assert occ.pattern_idx.tolist() == sorted(occ.pattern_idx.tolist())


def test_occurrences_window_and_max_gap():
    occ = pattern_occurrences([Pattern((A, B, C), 1.0, 0, (), ())], SYMBOLS, SEQUENCE, TIMES, window=3.5)
    assert list(zip(occ.occ_first, occ.occ_last)) == [(3, 6)]  # spans 4 and 9 exceed 3.5 s
    occ = pattern_occurrences([(A, B, C)], SYMBOLS, SEQUENCE, TIMES, max_gap=1)
    assert list(zip(occ.occ_first, occ.occ_last)) == [(8, 10)]
    occ = pattern_occurrences([(A, B, C)], SYMBOLS, SEQUENCE, TIMES, window=4.0, max_gap=2)
    assert list(zip(occ.occ_first, occ.occ_last)) == [(0, 4), (3, 6)]


def test_a_subset_of_occurrences_equals_the_occurrences_of_those_patterns():
    patterns = [(A, B, C), (A, C), (C, A), (C, C)]
    whole = pattern_occurrences(patterns, SYMBOLS, SEQUENCE, TIMES)
    keep = np.array([1, 3])
    part = pattern_occurrences([patterns[i] for i in keep], SYMBOLS, SEQUENCE, TIMES)
    for name in ("alert_idx", "pattern_idx", "occ_pattern", "occ_first", "occ_last", "count"):
        np.testing.assert_array_equal(getattr(whole.subset(keep), name), getattr(part, name), err_msg=name)


def test_occurrences_of_no_patterns():
    occ = pattern_occurrences([], SYMBOLS, SEQUENCE, TIMES)
    assert occ.count.size == 0 and occ.alert_idx.size == 0


# Dependency scores ---------------------------------------------------------------------------
def test_dependency_scores():
    cond = np.array([[0.5, 0.2], [1.0, 1.0]])
    lift = np.array([[2.0, 8.0], [1.0, 1.0]])
    support = np.array([10, 100])
    assert dependency_scores(cond, lift, support, 1000, "chain") == pytest.approx([0.1, 1.0])
    assert dependency_scores(cond, lift, support, 1000, "geometric") == pytest.approx([0.1**0.5, 1.0])
    assert dependency_scores(cond, lift, support, 1000, "log_lift") == pytest.approx([0.75, 0.0])
    # rarity 1 - log(10)/log(1000) = 2/3 and 1 - log(100)/log(1000) = 1/3
    rare = dependency_scores(cond, lift, support, 1000, "chain", rarity_weight=0.5)
    assert rare == pytest.approx([(0.1 * 2 / 3) ** 0.5, (1 / 3) ** 0.5])
    with pytest.raises(ValueError):
        dependency_scores(cond, lift, support, 1000, "mean")


# Pattern search ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gapped_search_finds_planted_patterns_under_noise(seed):
    plants = planted(seed)
    symbols, sequence = noisy_sequences(seed, [(p, 8) for p in plants])
    tree, model = fitted(symbols, sequence)
    gapped = find_patterns(tree, model, max_gap=4)
    contiguous = find_patterns(tree, model, max_gap=1)
    assert recall(plants, gapped) == 3
    # consecutive steps of a planted occurrence are adjacent only 1 time in 3: the tree misses them
    assert recall(plants, contiguous) <= 1
    assert all(len(p.symbols) >= 2 and 0 <= p.dependency <= 1 for p in gapped)
    assert [p.dependency for p in gapped] == sorted((p.dependency for p in gapped), reverse=True)


def test_contiguous_search_finds_adjacent_patterns():
    plants = planted(3)
    symbols, sequence = noisy_sequences(3, [(p, 8) for p in plants], max_noise=0)
    tree, model = fitted(symbols, sequence)
    assert recall(plants, find_patterns(tree, model, max_gap=1)) == 3


@pytest.mark.parametrize("max_gap", [1, 4])
def test_support_is_the_number_of_occurrences(max_gap):
    plants = planted(4)
    symbols, sequence = noisy_sequences(4, [(p, 8) for p in plants])
    tree, model = fitted(symbols, sequence)
    times = np.arange(len(symbols), dtype=float) * 10.0
    window = None if max_gap == 1 else 60.0
    patterns = find_patterns(tree, model, max_gap=max_gap, times=times, window=window, min_lift=1.5, min_support=3)
    assert len(patterns) > 20
    occ = pattern_occurrences(patterns, symbols, sequence, times, window=window, max_gap=max_gap)
    assert occ.count.tolist() == [p.support for p in patterns]
    assert (times[occ.occ_last] - times[occ.occ_first] <= (window or np.inf)).all()


def test_rarity_weight_demotes_frequent_routine():
    routine, attack = (10, 11, 12), (30, 31, 32, 33)
    symbols, sequence = noisy_sequences(5, [(routine, 150), (attack, 8)])
    tree, model = fitted(symbols, sequence)

    def dependency(patterns, steps):
        return next(p.dependency for p in patterns if p.symbols == steps)

    plain = find_patterns(tree, model, score="geometric", max_patterns=10**6, suppress_subpatterns=False)
    rare = find_patterns(tree, model, score="geometric", rarity_weight=0.8, max_patterns=10**6,
                         suppress_subpatterns=False)
    assert dependency(plain, routine) > dependency(plain, attack)
    assert dependency(rare, routine) < dependency(rare, attack)


def test_sequence_baseline_ignores_a_hosts_own_routine():
    """Two 'domain controllers' draw only from their own types 45..49 in random order: those
    types follow each other there by chance, yet are rare overall. Against the global chance
    rate that looks like dependency; against the rate in the prefix's own sequences it does not."""
    attack = (20, 21, 22)
    symbols, sequence = noisy_sequences(7, [(attack, 10)], n_seq=12)
    rng = np.random.default_rng(7)
    for host in (0, 1):
        symbols[sequence == host] = rng.integers(45, 50, (sequence == host).sum())
    tree, model = fitted(symbols, sequence)

    def routine_in_top(baseline):
        found = find_patterns(tree, model, baseline=baseline, max_patterns=10)
        return [p.symbols for p in found if all(s >= 45 for s in p.symbols)]

    assert routine_in_top("global"), "the global baseline is fooled by the hosts' routine"
    assert not routine_in_top("sequence")
    found = find_patterns(tree, model, baseline="sequence", max_patterns=10)
    assert recall([attack], found) == 1


def test_concatenated_ranges_by_hand():
    from car.temporal.patterns import concatenated_ranges

    got = concatenated_ranges(np.array([2, 5, 7]), np.array([4, 5, 10]))
    assert got.tolist() == [2, 3, 7, 8, 9]
    assert concatenated_ranges(np.zeros(0, np.int64), np.zeros(0, np.int64)).tolist() == []
