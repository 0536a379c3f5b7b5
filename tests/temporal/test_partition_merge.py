"""Context-tree counts built per partition of entities and merged equal the counts built whole,
through the AlertDataModule path (what a cluster does: count per partition, merge the counts)."""

import numpy as np
import pytest

from car.data import load_alerts
from car.data.datamodule import AlertDataModule, encode_alerts, entity_partitions
from car.temporal import ContextTree
from car.temporal.context_tree import COUNT_ARRAYS
from conftest import shared_file

DEPTH = 4


def assert_same_tree(merged: ContextTree, whole: ContextTree) -> None:
    """Every count, node id and per-run entry equal, exactly."""
    assert merged.n_symbols == whole.n_symbols and merged.depth == whole.depth
    for k, (lm, lw) in enumerate(zip(merged.levels, whole.levels)):
        for name in lw.__dataclass_fields__:
            assert np.array_equal(getattr(lm, name), getattr(lw, name)), f"depth {k}: {name}"
    for name in ("symbols", "pos", "entry_of"):
        assert np.array_equal(getattr(merged, name), getattr(whole, name)), name
    chains_m, chains_w = merged.chain_counts(True), whole.chain_counts(True)
    for name in COUNT_ARRAYS:
        assert np.array_equal(getattr(chains_m, name), getattr(chains_w, name)), name


def check_partitions_merge_to_whole(table, partitions: int) -> None:
    encoded = encode_alerts(table.unlabeled())
    whole = ContextTree.build(encoded.symbols, encoded.sequence, DEPTH, encoded.n_symbols)
    groups = entity_partitions(encoded.sequence, partitions)
    # Real partitions: each holds whole entities, none shared, and no one group holds nearly everything.
    assert len(groups) == partitions
    entity_sets = [set(encoded.sequence[rows].tolist()) for rows in groups]
    assert sum(map(len, entity_sets)) == len(set().union(*entity_sets)) == len(np.unique(encoded.sequence))
    assert max(map(len, groups)) < 0.9 * len(encoded.symbols)
    # Each partition's tree alone lacks counts the merge must add (else the test proves nothing).
    first = ContextTree.build(encoded.symbols[groups[0]], encoded.sequence[groups[0]], DEPTH, encoded.n_symbols)
    assert first.levels[0].entry_count.sum() < whole.levels[0].entry_count.sum()
    data = AlertDataModule(encoded, DEPTH, partitions=partitions)
    assert_same_tree(data.tree, whole)


@pytest.fixture(scope="module")
def sim():
    return load_alerts({"format": "enterprise_sim", "n_alerts": 20000, "seed": 3}, None)


@pytest.mark.parametrize("partitions", [2, 5])
def test_simulator_partitions_merge_to_the_whole_tree(sim, partitions):
    check_partitions_merge_to_whole(sim, partitions)


@pytest.fixture(scope="module")
def russellmitchell():
    return load_alerts({"format": "ait_ads"}, str(shared_file("ait-ads", "russellmitchell_alerts.csv.gz")))


@pytest.mark.parametrize("partitions", [2, 5])
def test_ait_ads_partitions_merge_to_the_whole_tree(russellmitchell, partitions):
    check_partitions_merge_to_whole(russellmitchell, partitions)


def test_merge_all_of_one_tree_is_that_tree():
    symbols, sequence = np.array([0, 1, 0, 2]), np.array([0, 0, 1, 1])
    tree = ContextTree.build(symbols, sequence, 2, 3)
    assert ContextTree.merge_all([tree]) is tree
    with pytest.raises(ValueError):
        ContextTree.merge_all([])
