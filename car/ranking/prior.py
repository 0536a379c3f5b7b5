"""The per-alert prior q of the ranking objective (docs/method.md, pipeline step 7).

Four parts, each computed with sorts and bincounts (no per-alert Python loop):

* type rarity: -log frequency of the alert type, counting a burst (same entity, same type,
  each alert at most ``burst_gap`` seconds after the one before; alerts of other types in
  between do not end it) once;
* value surprise: per attribute, how much more surprising the alert's value is for its type
  than the type's values usually are (-log p(value | type) minus its mean over the type), at
  least 0, summed over the attributes; a random address field that is surprising for every
  alert of a type adds nothing;
* entity context: ``context_weight`` times the highest prior of the other alerts of the same
  entity within ``context_window`` seconds, so the quiet steps next to a surprising one rise;
* address context: ``address_weight`` times the highest prior of the other alerts within
  ``address_window`` seconds that share a rare address with the alert (an attacker's address
  on the steps of a campaign across hosts).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import numpy as np
import pandas as pd

SMOOTHING = 0.5  # pseudo-count of every value (and of one unseen value) in p(value | type)
ROUND_OFF = 1e-9  # nats; a smaller excess surprise is 0
UNUSUAL = np.log(10.0)  # nats; a value this much more surprising than usual for its type is named in `why`
# An address links alerts when at most this many alerts carry it (servers, resolvers and popular
# sites carry more). A count, not a share of the batch: the highest prior among the alerts that
# share an address grows with their number, whatever the batch's size.
RARE_ADDRESS_ALERTS = 30
ADDRESS_SAMPLE = 1000  # at most this many distinct values of a column are checked for addresses, evenly spaced


def burst_starts(entity: np.ndarray, key: np.ndarray, times: np.ndarray, gap: float,
                 group: np.ndarray | None = None, order: np.ndarray | None = None) -> np.ndarray:
    """(n,) bool: the alerts that start a burst, in input order.

    A burst is the alerts of one entity with one ``key`` (an alert type, say), each at most
    ``gap`` seconds after the one before with that entity and key; alerts with other keys in
    between do not end it. ``gap`` inf: one burst per (entity, key). ``group`` (n,) bool splits
    further (history and batch alerts never share a burst). times in seconds. ``order``: a
    permutation that sorts the alerts by (entity, time), if the caller has one.
    """
    key = np.asarray(key, dtype=np.int64)
    if group is not None:
        key = 2 * key + np.asarray(group, dtype=np.int64)
    order = _by_entity_time(entity, times, order)
    return _bursts(order, np.asarray(entity), key, np.asarray(times, dtype=np.float64), [gap])[0]


def _by_entity_time(entity: np.ndarray, times: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """``order`` if given, else the stable permutation that sorts the alerts by (entity, time)."""
    return np.lexsort((times, entity)) if order is None else order


def _bursts(order: np.ndarray, entity: np.ndarray, key: np.ndarray, times: np.ndarray,
            gaps: list[float]) -> list[np.ndarray]:
    """`burst_starts` for each gap, given ``order`` that sorts the alerts by (entity, time): a
    stable sort by key then orders them by (key, entity, time) without sorting times again."""
    order = order[_stable_argsort(key[order])]
    k, e, t = key[order], entity[order], times[order]
    changed = (k[1:] != k[:-1]) | (e[1:] != e[:-1])
    out = []
    for gap in gaps:
        starts = np.ones(len(order), dtype=bool)
        starts[1:] = changed | (np.diff(t) > gap)
        unsorted = np.empty(len(order), dtype=bool)
        unsorted[order] = starts
        out.append(unsorted)
    return out


def _stable_argsort(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` for non-negative integer keys, by 16-bit digits from the
    lowest: numpy radix-sorts 16-bit keys, 1 ms against 8 ms for its timsort on 100,000 int64 keys."""
    order, shift, top = np.arange(len(keys)), 0, int(keys.max(initial=0))
    while True:
        order = order[np.argsort((keys[order] >> shift).astype(np.uint16), kind="stable")]
        shift += 16
        if top >> shift == 0:
            return order


def type_rarity(types: np.ndarray, n_types: int, at: np.ndarray | None = None) -> np.ndarray:
    """-log add-one smoothed frequency among ``types`` of each type in ``at`` (default: ``types``)."""
    counts = np.bincount(types, minlength=n_types).astype(np.float64)
    at = types if at is None else at
    return -np.log((counts[at] + 1.0) / (len(types) + n_types + 1.0))


def value_surprise(entity: np.ndarray, types: np.ndarray, values: np.ndarray, times: np.ndarray,
                   counted: np.ndarray, at: np.ndarray, gaps: list[float | None],
                   order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Summed excess surprise of the attribute values of the alerts ``at`` (indices), averaged over
    ways of counting, shape (len(at),); and the attribute (column of ``values``) that adds the
    most, where it adds at least ``UNUSUAL``, else -1, shape (len(at),).

    entity, types (n,) codes; values (n, m) codes of m attributes; times (n,) seconds. Only the
    ``counted`` alerts (n,) bool count, each burst of an (entity, type, value) once, for each gap
    of ``gaps`` (seconds as in `burst_starts`; None: every alert; inf: once per entity). Per
    attribute a: p(v | t) = (C(t, v) + s) / (C(t) + s (V_t + 1)) with C the counts, V_t the
    values counted with type t and s = ``SMOOTHING``; the surprise -log p(v | t) minus its
    count-weighted mean over the type's values, clipped at 0. A type never counted gives 0 (its
    rarity already says it is new). ``order`` as in `burst_starts`.
    """
    types, times = np.asarray(types, dtype=np.int64), np.asarray(times, dtype=np.float64)
    n_types = int(types.max(initial=-1)) + 1
    order = _by_entity_time(entity, times, order)
    total, most, top = np.zeros(len(at)), np.full(len(at), UNUSUAL), np.full(len(at), -1)
    timed = [gap for gap in gaps if gap is not None]
    for a in range(values.shape[1]):
        width = int(values[:, a].max(initial=-1)) + 1
        keys, pair = np.unique(types * width + values[:, a], return_inverse=True)
        key_type = keys // width
        starts = iter(_bursts(order, entity, 2 * pair + counted, times, timed) if timed else [])
        part = np.zeros(len(at))
        for gap in gaps:
            weight = counted if gap is None else counted & next(starts)
            count = np.bincount(pair, weights=weight, minlength=len(keys))
            seen = np.bincount(key_type, weights=count, minlength=n_types) > 0
            part += np.where(seen[types[at]], _excess(count, key_type, n_types)[pair[at]], 0.0) / len(gaps)
        total += part
        top[part >= most] = a
        most = np.maximum(most, part)
    return total, top


def _excess(count: np.ndarray, key_type: np.ndarray, n_types: int) -> np.ndarray:
    """Excess surprise (see `value_surprise`) of each (type, value) key from its count (k,)."""
    type_count = np.bincount(key_type, weights=count, minlength=n_types)
    type_values = np.bincount(key_type, weights=count > 0, minlength=n_types)
    surprise = -np.log((count + SMOOTHING) / (type_count + SMOOTHING * (type_values + 1.0))[key_type])
    share = np.divide(count, type_count[key_type], out=np.zeros_like(count), where=type_count[key_type] > 0)
    excess = surprise - np.bincount(key_type, weights=share * surprise, minlength=n_types)[key_type]
    excess[excess < ROUND_OFF] = 0.0  # values as usual as the rest: exactly 0, not round-off
    return excess


def alert_prior(entity: np.ndarray, types: np.ndarray, values: np.ndarray, times: np.ndarray,
                counted: np.ndarray, at: np.ndarray, n_types: int, burst_gap: float | None,
                values_too: bool, order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prior of the alerts ``at`` (indices), shape (len(at),), counted over the ``counted`` alerts:
    type rarity (bursts of ``burst_gap`` seconds counted once; None: every alert), plus, if
    ``values_too``, the value surprise averaged over two ways of counting: by bursts and by
    entities (a value seen on one entity counts once however often it fires there). Returns the
    prior, the most unusual attribute per alert, or -1 (see `value_surprise`), and the value
    surprise alone (nats; zeros without ``values_too``). Arguments as there; the (entity, time)
    ``order`` is found once for all the counts."""
    order = _by_entity_time(entity, times, order)
    first = counted if burst_gap is None else counted & burst_starts(entity, types, times, burst_gap, counted, order)
    prior = type_rarity(types[first], n_types, at=types[at])
    if not (values_too and values.shape[1]):
        return prior, np.full(len(at), -1), np.zeros(len(at))
    surprise, unusual = value_surprise(entity, types, values, times, counted, at, [burst_gap, np.inf], order)
    return prior + surprise, unusual, surprise


def entity_context(entity: np.ndarray, times: np.ndarray, score: np.ndarray, window: float,
                   order: np.ndarray | None = None) -> np.ndarray:
    """Per alert (n,): the highest ``score`` among the other alerts of its entity at most
    ``window`` seconds away (0 if there is none; scores must be >= 0). ``order`` as in
    `burst_starts`."""
    n = len(score)
    order = _by_entity_time(entity, times, order)
    ent, t, s = np.asarray(entity)[order], np.asarray(times, dtype=np.float64)[order], np.asarray(score)[order]
    if n == 0:
        return np.zeros(0)
    # Times laid end to end per entity, windows apart, so that a window never reaches into the next entity.
    first = np.r_[True, ent[1:] != ent[:-1]]
    block = np.cumsum(first) - 1
    span = t.max() - t.min() + 2 * window + 1
    line = (t - t.min()) + block * span
    lo = np.searchsorted(line, line - window, side="left")
    hi = np.searchsorted(line, line + window, side="right")
    index = np.arange(n)
    best = np.maximum(_range_max(s, lo, index), _range_max(s, index + 1, hi))
    out = np.empty(n)
    out[order] = np.maximum(best, 0.0)
    return out


def _range_max(values: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """max(values[start[i]:stop[i]]) per query, -inf for an empty range. A sparse table built one
    level at a time, each query answered at its level: O(n log n) time, O(n) memory."""
    out = np.full(len(start), -np.inf)
    length = stop - start
    live = np.flatnonzero(length > 0)
    level = np.zeros(len(start), dtype=np.int64)
    level[live] = np.floor(np.log2(length[live])).astype(np.int64)
    table = values.astype(np.float64)
    j = 0
    while len(live):
        now = live[level[live] == j]
        if len(now):
            out[now] = np.maximum(table[start[now]], table[stop[now] - (1 << j)])
            live = live[level[live] != j]
        table = np.maximum(table[:-(1 << j)], table[1 << j:]) if len(table) > (1 << j) else table
        j += 1
    return out


def percentile(x: np.ndarray) -> np.ndarray:
    """Mid-rank of each value in [0, 1] (ties share their mean rank), shape (n,)."""
    if len(x) < 2:
        return np.ones_like(x, dtype=np.float64)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    below = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return (below[inv] + (counts[inv] - 1) / 2) / (len(x) - 1)


def address_columns(vocab: Mapping[str, pd.Index]) -> list[str]:
    """The attributes of ``vocab`` (attribute name -> its distinct values) most of whose non-empty
    values are IPv4 or IPv6 addresses (judged on up to ``ADDRESS_SAMPLE`` of them)."""
    out = []
    for name, values in vocab.items():
        text = [str(v) for v in values[:: max(1, -(-len(values) // ADDRESS_SAMPLE))]]
        text = [v for v in text if v]
        if text and sum(map(_is_address, text)) > len(text) / 2:
            out.append(name)
    return out


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def address_context(entity: np.ndarray, addresses: np.ndarray, times: np.ndarray, score: np.ndarray,
                    window: float) -> tuple[np.ndarray, np.ndarray]:
    """Per alert (n,): the highest ``score`` among the other alerts at most ``window`` seconds away
    that share one of its rare addresses (on at most ``RARE_ADDRESS_ALERTS`` alerts); and the
    address column (index into ``addresses``) that gives it, -1 for none. An entity's own address
    (its most common value of a column) links nothing: the entity context covers its alerts.
    entity (n,) codes; addresses (n, m) codes of m address columns; times (n,) seconds; score
    (n,) >= 0."""
    n = len(score)
    best, column = np.zeros(n), np.full(n, -1)
    for a in range(addresses.shape[1]):
        values = addresses[:, a]
        rare = np.bincount(values)[values] <= RARE_ADDRESS_ALERTS
        at = np.flatnonzero(rare & ~_own_values(entity, values))
        lift = entity_context(values[at], times[at], score[at], window)
        better = lift > best[at]
        best[at[better]], column[at[better]] = lift[better], a
    return best, column


def _own_values(entity: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(n,) bool: the alert's value is its entity's most common one (the lowest code on ties)."""
    width = int(values.max(initial=0)) + 1
    pairs, pair_of, count = np.unique(entity.astype(np.int64) * width + values, return_inverse=True,
                                      return_counts=True)
    order = np.lexsort((-count, pairs // width))  # per entity, its most common pair first
    owner = pairs[order] // width
    first = np.ones(len(pairs), dtype=bool)
    first[1:] = owner[1:] != owner[:-1]
    own = np.zeros(len(pairs), dtype=bool)
    own[order[first]] = True
    return own[pair_of]
