"""Sparse content similarity: tuple k-NN graph and its broadcast to alerts."""

import numpy as np
import pytest

from car.content import EntityEmbedding, fit_ape, knn_similarity, tuple_knn, unique_tuples
from car.content.similarity import edge_preserving, normalise_degrees, scale_by_tuple_size
from car.data import load_alerts
from car.data.datamodule import encode_alerts


def dense_similarity(model: EntityEmbedding, tuples: np.ndarray) -> np.ndarray:
    """Reference Sim (u, u): mean over attributes of (1 + cos) / 2, zero vectors count cos 0."""
    v = model.vectors(tuples).detach().numpy().astype(np.float64)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    v = np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)
    cos = np.einsum("iad,jad->ija", v, v)
    return ((1 + cos) / 2).mean(-1)


def model_and_codes(n: int = 400, seed: int = 0) -> tuple[EntityEmbedding, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = np.stack([rng.integers(0, 6, n), rng.integers(0, 5, n), rng.integers(0, 3, n)], axis=1)
    tuples, counts, _ = unique_tuples(codes)
    model = EntityEmbedding.from_tuples(tuples, counts, dim=8, seed=seed)
    fit_ape(model, tuples, counts, epochs=5, batch_size=16, seed=seed)
    return model, codes


def test_tuple_knn_matches_dense_top_k():
    model, codes = model_and_codes()
    tuples, _, _ = unique_tuples(codes)
    u, k = len(tuples), 4
    row, col, weight = tuple_knn(model, tuples, k=k, chunk_size=7)
    dense = dense_similarity(model, tuples)
    np.fill_diagonal(dense, -np.inf)
    expected = set()
    for i in range(u):
        for j in np.argsort(-dense[i], kind="stable")[:k]:
            expected |= {(i, int(j)), (int(j), i)}
    assert set(zip(row.tolist(), col.tolist())) == expected
    np.testing.assert_allclose(weight, dense[row, col], atol=1e-5)
    assert (row != col).all()
    assert weight.min() >= 0 and weight.max() <= 1
    assert (np.bincount(row, minlength=u) >= k).all()


def test_tuple_knn_is_symmetric_without_duplicates():
    model, codes = model_and_codes(seed=1)
    tuples, _, _ = unique_tuples(codes)
    row, col, weight = tuple_knn(model, tuples, k=3)
    edges = dict(zip(zip(row.tolist(), col.tolist()), weight.tolist()))
    assert len(edges) == len(row)
    assert all(edges[(j, i)] == w for (i, j), w in edges.items())


def test_similarity_of_identical_tuples_is_one_and_unknown_counts_half():
    model, _ = model_and_codes()
    tuples = np.array([[1, 2, 0], [1, 2, 0], [1, 3, 0]])
    dense = dense_similarity(model, tuples)
    assert dense[0, 1] == pytest.approx(1.0)
    assert dense[0, 2] < 1.0
    unknown = model.map_unknown(np.array([[1, 2, -1], [1, 2, 0]]))
    row, col, weight = tuple_knn(model, unknown.numpy(), k=1)
    assert weight.tolist() == pytest.approx([(2 + 0.5) / 3] * 2)


def test_alert_graph_links_shared_tuples_to_one_representative():
    model, codes = model_and_codes(n=300)
    tuples, counts, inverse = unique_tuples(codes)
    k = 5
    row, col, weight = knn_similarity(model, tuples, inverse, k=k)
    n, u = len(codes), len(tuples)
    assert (row != col).all() and row.min() >= 0 and max(row.max(), col.max()) < n
    assert weight.min() >= 0 and weight.max() <= 1
    pairs = dict(zip(zip(row.tolist(), col.tolist()), weight.tolist()))
    assert len(pairs) == len(row) and all(pairs[(j, i)] == w for (i, j), w in pairs.items())
    assert (np.diff(row * n + col) > 0).all(), "sorted by (row, col), as the ranking's CSR matrix takes it"

    same = inverse[row] == inverse[col]
    assert (weight[same] == 1.0).all()
    assert same.sum() == 2 * (n - u)  # a star per tuple: n - u undirected edges
    first = np.array([np.flatnonzero(inverse == t)[0] for t in range(u)])
    members = np.flatnonzero(first[inverse] != np.arange(n))
    assert (np.bincount(row[same], minlength=n)[members] == 1).all()
    assert set(row[~same].tolist()) <= set(first.tolist())
    assert (np.bincount(inverse[row[~same]], minlength=u) >= k).all()

    t_row, t_col, t_weight = tuple_knn(model, tuples, k=k)
    np.testing.assert_allclose(np.sort(weight[~same]), np.sort(t_weight))
    d_row, d_col, _ = tuple_knn(model, tuples, k=k, symmetric=False)
    assert (np.bincount(d_row, minlength=u) == k).all() and len(t_row) < 2 * len(d_row)


def test_alert_graph_with_one_tuple_is_a_star():
    model, _ = model_and_codes()
    row, col, weight = knn_similarity(model, np.array([[0, 0, 0]]), np.zeros(4, dtype=np.int64), k=3)
    assert sorted(zip(row.tolist(), col.tolist())) == [(0, 1), (0, 2), (0, 3), (1, 0), (2, 0), (3, 0)]
    assert (weight == 1.0).all()


def test_large_tuple_sets_search_neighbours_in_cells():
    model, codes = model_and_codes(n=600, seed=2)
    tuples, _, _ = unique_tuples(codes)
    u = len(tuples)
    exact = tuple_knn(model, tuples, k=4)
    same = tuple_knn(model, tuples, k=4, max_exact=u)
    assert all(np.array_equal(a, b) for a, b in zip(exact, same))
    row, col, weight = tuple_knn(model, tuples, k=4, max_exact=20, cell_size=8, copies=2)
    again = tuple_knn(model, tuples, k=4, max_exact=20, cell_size=8, copies=2)
    assert all(np.array_equal(a, b) for a, b in zip((row, col, weight), again)), "deterministic"
    assert set(zip(row.tolist(), col.tolist())) == set(zip(col.tolist(), row.tolist()))
    assert (row != col).all() and ((weight >= 0) & (weight <= 1)).all()
    assert (np.bincount(row, minlength=u) >= 1).all()
    dense = dense_similarity(model, tuples)
    np.testing.assert_allclose(weight, dense[row, col], atol=1e-5)
    found = set(zip(row.tolist(), col.tolist()))
    assert len(found & set(zip(exact[0].tolist(), exact[1].tolist()))) >= 0.5 * len(exact[0])


def test_cell_search_with_one_cell_is_exact():
    model, codes = model_and_codes(seed=1)
    tuples, _, _ = unique_tuples(codes)
    exact = tuple_knn(model, tuples, k=3)
    one_cell = tuple_knn(model, tuples, k=3, max_exact=10, cell_size=len(tuples))
    assert all(np.array_equal(a, b) for a, b in zip(exact[:2], one_cell[:2]))
    np.testing.assert_allclose(exact[2], one_cell[2], atol=1e-6)


def test_cell_search_keeps_the_exact_neighbours_of_simulated_alerts():
    """Quality floor of the approximate search on data with realistic structure: 10 k simulated
    alerts, about 7,000 distinct tuples of 10 attributes, APE trained as CAR trains it."""
    table = load_alerts({"format": "enterprise_sim", "n_alerts": 10_000, "seed": 1}, None)
    tuples, counts, _ = unique_tuples(encode_alerts(table).codes)
    model = EntityEmbedding.from_tuples(tuples, counts, dim=16, seed=0)
    fit_ape(model, tuples, counts, epochs=10, batch_size=1024, seed=0)
    exact = tuple_knn(model, tuples, max_exact=len(tuples))
    cells = tuple_knn(model, tuples, max_exact=0)
    edges = set(zip(exact[0].tolist(), exact[1].tolist()))
    assert len(tuples) > 4096, "above the default max_exact"
    assert len(edges & set(zip(cells[0].tolist(), cells[1].tolist()))) >= 0.95 * len(edges)


def test_edge_preserving_similarity_fades_with_the_signal_gap():
    sim = (np.array([0, 1, 0, 2]), np.array([1, 0, 2, 0]), np.array([1.0, 1.0, 0.5, 0.5]))
    signal = np.array([0.9, 0.9, 0.4])
    row, col, weight = edge_preserving(sim, signal, 0.25)
    assert row.tolist() == [0, 1, 0, 2] and col.tolist() == [1, 0, 2, 0]
    np.testing.assert_allclose(weight, [1.0, 1.0, 0.5 * np.exp(-2), 0.5 * np.exp(-2)])


def test_normalised_similarity_damps_edges_across_tuples_by_their_totals():
    """Alerts 0 and 1 share a tuple (a star edge, kept); alert 0 resembles alerts 2, 3 and 4 of
    other tuples with total weight 1.5; alert 4 also resembles alert 3 (weight 0.2)."""
    tuple_of = np.array([7, 7, 8, 9, 5])
    pairs = [(0, 1, 1.0), (0, 2, 0.5), (0, 3, 0.5), (0, 4, 0.5), (3, 4, 0.2)]
    row = np.array([a for a, b, _ in pairs] + [b for a, b, _ in pairs])
    col = np.array([b for a, b, _ in pairs] + [a for a, b, _ in pairs])
    weight = np.array([w for *_, w in pairs] * 2)
    out_row, out_col, out = normalise_degrees((row, col, weight), tuple_of)
    assert out_row.tolist() == row.tolist() and out_col.tolist() == col.tolist()
    total = {0: 1.5, 1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}  # max(1, weight to other tuples)
    expected = [w if tuple_of[a] == tuple_of[b] else w / np.sqrt(total[a] * total[b]) for a, b, w in zip(row, col, weight)]
    np.testing.assert_allclose(out, expected)
    assert out[0] == 1.0 and out[1] == pytest.approx(0.5 / np.sqrt(1.5))
    assert out[4] == 0.2  # both totals below 1: never raised


def flood_and_one_off(size: int, flood_prior: float) -> tuple[np.ndarray, tuple, np.ndarray]:
    """Four tuples: a benign flood (``size`` alerts, prior 0.5), a one-off attack (prior 1) that
    looks like it, a flood of ``size`` alerts with prior ``flood_prior`` and a one-off (prior 0.5)
    that looks like that flood. Each tuple's first alert carries the edge to its look-alike
    (weight 1) and the star to its tuple, as `knn_similarity` builds them: (tuple_of, Sim, q)."""
    tuple_of = np.r_[np.zeros(size, int), 1, np.full(size, 2), 3]
    first = np.array([0, size, size + 1, 2 * size + 1])
    member = np.flatnonzero(np.arange(len(tuple_of)) != first[tuple_of])
    row = np.r_[member, first[tuple_of[member]], first]
    col = np.r_[first[tuple_of[member]], member, first[[1, 0, 3, 2]]]
    q = np.r_[np.full(size, 0.5), 1.0, np.full(size, flood_prior), 0.5]
    return tuple_of, (row, col, np.ones(len(row))), q


def test_tuple_pull_keeps_a_one_off_above_a_flood_with_a_lower_prior():
    """A flood of identical alerts anchors itself (its alerts' ridge outweighs the one edge its
    first alert has to its look-alikes) while a one-off alert is averaged toward its look-alike:
    the one-off attack (prior 1) beside a benign flood fell below a flood with prior 0.92. With
    the cross-tuple pull times size^0.5 (``ranking.tuple_pull``) the flood is pulled too and
    the attack stays above it."""
    from car.ranking import RankingParams, build_graph, collaborative_rank

    size = 10
    tuple_of, sim, q = flood_and_one_off(size, 0.92)
    top = {}
    for power in (0.0, 0.5):
        graph = build_graph(len(q), 0, [], [], *scale_by_tuple_size(sim, tuple_of, power), symmetric=power == 0)
        t = collaborative_rank(graph, np.zeros(0), q, RankingParams(alpha=0.0, beta=0.5, gamma=2.0)).t.numpy()
        top[power] = t[size] > t[size + 1 : 2 * size + 1].max()
    assert top == {0.0: False, 0.5: True}


def test_scale_by_tuple_size_scales_only_edges_across_tuples_by_the_row_tuples_size():
    tuple_of, sim, _ = flood_and_one_off(4, 0.9)
    row, col, weight = scale_by_tuple_size(sim, tuple_of, 0.5)
    np.testing.assert_array_equal(row, sim[0])
    np.testing.assert_array_equal(col, sim[1])
    across = tuple_of[row] != tuple_of[col]
    np.testing.assert_allclose(weight[across], [2.0, 1.0, 2.0, 1.0])  # rows 0 and 5 head floods of 4
    np.testing.assert_array_equal(weight[~across], 1.0)
    assert scale_by_tuple_size(sim, tuple_of, 0.0) is sim
