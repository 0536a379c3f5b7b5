"""The per-alert prior: bursts, value surprise, entity and address context (car/ranking/prior.py)."""

import numpy as np
import pandas as pd
import pytest

from car.ranking.prior import (
    RARE_ADDRESS_ALERTS, _range_max, _stable_argsort, address_columns, address_context, alert_prior, burst_starts,
    entity_context, percentile, value_surprise,
)


def test_a_burst_survives_other_types_in_between_and_ends_after_the_gap():
    entity = np.array([0, 0, 0, 0, 0, 1, 0])
    key = np.array([5, 7, 5, 5, 7, 5, 5])
    times = np.array([0.0, 10, 30, 80, 90, 95, 200])
    # alert 2 continues alert 0's burst across the type-7 alert; 3 is 50 s after 2; 4 is 80 s
    # after 1; entity 1 starts its own; 6 is 120 s after 3.
    assert burst_starts(entity, key, times, 60.0).tolist() == [True, True, False, False, True, True, True]
    assert burst_starts(entity, key, times, np.inf).tolist() == [True, True, False, False, False, True, False]
    group = np.array([0, 0, 1, 1, 0, 0, 1])
    assert burst_starts(entity, key, times, np.inf, group=group).tolist() == [True, True, True, False, False, True, False]


def test_value_surprise_flags_the_odd_value_of_a_type_and_ignores_values_that_are_all_new():
    """Type 0: process 'a' 19 times, 'b' once; the address column is different every time."""
    n = 20
    types = np.zeros(n, dtype=np.int64)
    process = np.array([0] * 19 + [1])
    address = np.arange(n)
    values = np.column_stack([process, address])
    everything = np.ones(n, dtype=bool)
    surprise, unusual = value_surprise(np.arange(n), types, values, np.arange(n) * 1000.0, everything, np.arange(n), [None])
    assert np.all(surprise[:19] == 0)
    # By hand for the odd one: p(b) = 1.5 / (20 + 0.5 * 3), p(a) = 19.5 / 21.5; the address term is 0.
    p_a, p_b = 19.5 / 21.5, 1.5 / 21.5
    usual = 0.95 * -np.log(p_a) + 0.05 * -np.log(p_b)
    assert surprise[19] == pytest.approx(-np.log(p_b) - usual)
    assert surprise[19] > np.log(10)
    assert unusual.tolist() == [-1] * 19 + [0]  # the process column names the odd one


def test_value_surprise_is_zero_for_a_type_the_counted_alerts_never_had():
    types = np.array([0, 0, 1])
    values = np.array([[0], [0], [1]])
    counted = np.array([True, True, False])
    out, _ = value_surprise(np.zeros(3, np.int64), types, values, np.arange(3.0), counted, np.arange(3), [None])
    assert out[2] == 0.0


def test_counting_by_bursts_makes_a_flood_of_one_value_count_once():
    """A value firing 50 times on one host in a minute is as rare as a value seen once."""
    flood = 50
    types = np.zeros(flood + 20, dtype=np.int64)
    process = np.r_[np.zeros(flood), np.ones(19), 2].astype(np.int64)  # 0 floods, 1 common, 2 once
    entity = np.r_[np.zeros(flood), np.arange(1, 21)].astype(np.int64)
    times = np.r_[np.arange(flood) * 1.0, np.arange(20) * 600.0]
    values = process[:, None]
    counted = np.ones(len(types), dtype=bool)
    at = np.array([0, flood, flood + 19])
    per_alert, _ = value_surprise(entity, types, values, times, counted, at, [None])
    per_burst, _ = value_surprise(entity, types, values, times, counted, at, [60.0])
    assert per_alert[0] == 0 and per_burst[0] > 0
    assert per_burst[0] == pytest.approx(per_burst[2])


def test_entity_context_is_the_highest_score_of_the_entitys_other_alerts_in_the_window():
    rng = np.random.default_rng(0)
    n = 400
    entity = rng.integers(0, 5, n)
    times = np.round(rng.uniform(0, 10_000, n))
    score = rng.exponential(1.0, n)
    got = entity_context(entity, times, score, 500.0)
    for i in range(n):
        near = (entity == entity[i]) & (np.abs(times - times[i]) <= 500.0)
        near[i] = False
        assert got[i] == (score[near].max() if near.any() else 0.0)


def test_range_max_matches_brute_force():
    rng = np.random.default_rng(1)
    values = rng.normal(size=257)
    start = rng.integers(0, 257, 500)
    stop = rng.integers(0, 258, 500)
    got = _range_max(values, start, stop)
    want = [values[a:b].max() if b > a else -np.inf for a, b in zip(start, stop)]
    np.testing.assert_array_equal(got, want)


def test_alert_prior_without_values_is_burst_type_rarity():
    entity = np.array([0, 0, 0, 1])
    types = np.array([0, 0, 1, 0])
    times = np.array([0.0, 10.0, 20.0, 0.0])
    counted = np.ones(4, dtype=bool)
    prior, unusual, surprise = alert_prior(entity, types, np.zeros((4, 1), np.int64), times, counted, np.arange(4), 2,
                                           60.0, False)
    assert unusual.tolist() == [-1] * 4 and surprise.tolist() == [0] * 4
    # bursts: type 0 twice (entities 0 and 1), type 1 once; add-one over 2 types + unseen slot.
    np.testing.assert_allclose(prior, -np.log(np.array([3, 3, 2, 3]) / (3 + 2 + 1)))


def test_alert_prior_with_values_adds_the_value_surprise_to_the_type_rarity():
    """The sum itself (a mutation that dropped the surprise from the prior was caught only by the
    slow simulator floors of tests/models/test_car.py)."""
    entity = np.repeat(np.arange(6), 4)
    types = np.zeros(24, dtype=np.int64)
    values = np.zeros((24, 1), dtype=np.int64)
    values[5] = 1  # one odd value of the type
    times = np.tile(np.array([0.0, 100.0, 200.0, 300.0]), 6)
    counted, at = np.ones(24, dtype=bool), np.arange(24)
    rarity, _, _ = alert_prior(entity, types, values, times, counted, at, 1, 60.0, False)
    prior, _, surprise = alert_prior(entity, types, values, times, counted, at, 1, 60.0, True)
    assert surprise[5] > 0 and (surprise > 0).sum() == 1
    np.testing.assert_allclose(prior, rarity + surprise)


@pytest.mark.parametrize("top", [1, 2, 70_000, 2**40, 2**62])
def test_stable_argsort_by_16_bit_digits_equals_numpys_stable_argsort(top):
    rng = np.random.default_rng(top % 1000)
    for n in (0, 1, 17, 5_000):
        keys = rng.integers(0, top, n)
        np.testing.assert_array_equal(_stable_argsort(keys), np.argsort(keys, kind="stable"))


def test_address_columns_are_those_holding_mostly_ip_addresses():
    vocab = {
        "user": pd.Index(["alice", "bob"]),
        "src_ip": pd.Index(["", "(missing)", "10.0.0.1", "192.168.1.20"]),
        "dst_ip": pd.Index(["2001:db8::5", "::1", "fe80::1"]),
        "dst_port": pd.Index(["443", "80"]),
        "clock": pd.Index(["12:30:45", "08:00:00"]),
        "mac": pd.Index(["aa:bb:cc:dd:ee:ff"]),
    }
    assert address_columns(vocab) == ["src_ip", "dst_ip"]


def test_address_context_links_alerts_of_other_entities_through_a_rare_address_within_the_window():
    """100 entities with 20 alerts each on their own address (codes 1000+), score 1; then the
    alerts under test: address 7 on entities 0, 1 (1 h later) and 2 (4 h later), score 5 on the
    first; address 8 on one alert more than rare addresses have, one of them scoring 9; address 9
    on entity 200's two alerts (its own) and on one alert of entity 201 (whose own address is 1201)."""
    entity = [e for e in range(100) for _ in range(20)]
    address = [1000 + e for e in entity]
    times = [e * 10.0 for e in range(2000)]
    score = [1.0] * 2000
    cases = [(0, 7, 0, 5.0), (1, 7, 3600, 1.0), (2, 7, 4 * 3600, 1.0)]
    common = RARE_ADDRESS_ALERTS + 1
    cases += [(3 + i, 8, 100.0 + i, 9.0 if i == 0 else 1.0) for i in range(common)]
    cases += [(200, 9, 0, 1.0), (200, 9, 60, 1.0), (201, 9, 30, 6.0), (201, 1201, 0, 1.0), (201, 1201, 90, 1.0)]
    for e, a, t, s in cases:
        entity.append(e), address.append(a), times.append(t), score.append(s)
    at = 2000
    lift, column = address_context(np.array(entity), np.array(address)[:, None], np.array(times), np.array(score),
                                   7200.0)
    assert lift[at:at + 3].tolist() == [1.0, 5.0, 0.0]
    assert column[at:at + 3].tolist() == [0, 0, -1]
    assert np.all(lift[at + 3:at + 3 + common] == 0)  # address 8 is common
    # Entity 200's own address links nothing, either way: not to entity 201's alert with score 6.
    assert lift[at + 3 + common:at + 6 + common].tolist() == [0.0, 0.0, 0.0]
    assert np.all(lift[:at] == 0)  # own addresses link nothing
    empty = np.zeros(0, dtype=np.int64)
    lift, column = address_context(empty, empty[:, None], empty, np.zeros(0), 7200.0)
    assert lift.shape == column.shape == (0,)


def test_percentile_gives_ties_their_mid_rank_in_zero_one():
    x = np.array([3.0, 1.0, 1.0, 2.0, 1.0])
    # ranks 0..4: the three 1.0 share ranks 0, 1, 2 (mean 1), 2.0 is rank 3, 3.0 is rank 4; / (n - 1)
    np.testing.assert_allclose(percentile(x), [1.0, 0.25, 0.25, 0.75, 0.25])
    np.testing.assert_allclose(percentile(np.array([5.0, 5.0])), [0.5, 0.5])
    assert percentile(np.array([7.0])).tolist() == [1.0]
