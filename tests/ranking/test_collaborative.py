"""Collaborative ranking: block coordinate solver against a dense solve of the joint quadratic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from car.errors import ConfigError, DataError
from car.ranking import RankingParams, build_graph, collaborative_rank, objective

N, L = 30, 5
TIGHT = dict(tol=1e-12, cg_tol=1e-13)


def random_inputs(seed: int, n: int = N, n_patterns: int = L, density: float = 0.15):
    """Random binary F, symmetric Sim (both directions), p and q in [0, 1]."""
    rng = np.random.default_rng(seed)
    f = rng.random((n, n_patterns)) < 0.3
    upper = np.triu(rng.random((n, n)) < density, k=1) * rng.random((n, n))
    sim = upper + upper.T
    return f, sim, rng.random(n_patterns), rng.random(n)


def graph_of(f: np.ndarray, sim: np.ndarray):
    fa, fp = np.nonzero(f)
    sr, sc = np.nonzero(sim)
    return build_graph(f.shape[0], f.shape[1], fa, fp, sr, sc, sim[sr, sc])


def inv_sqrt(degree: np.ndarray) -> np.ndarray:
    return np.where(degree > 0, 1 / np.sqrt(np.maximum(degree, 1e-300)), 0.0)


def dense_quadratic(f, sim, p, q, prm: RankingParams):
    """Hessian H and linear term g with J(z) = z'Hz/2 - g'z, z = (t, u), term by term."""
    n, n_pat = f.shape
    a = inv_sqrt(f.sum(1)) if prm.normalized else np.ones(n)
    b = inv_sqrt(f.sum(0)) if prm.normalized else np.ones(n_pat)
    s = inv_sqrt(sim.sum(1)) if prm.normalized else np.ones(n)
    h = 2 * prm.gamma * np.eye(n + n_pat)
    for j, l in zip(*np.nonzero(f)):  # alpha F[j,l] (a_j t_j - b_l u_l)^2
        c = np.zeros(n + n_pat)
        c[j], c[n + l] = a[j], -b[l]
        h += 2 * prm.alpha * np.outer(c, c)
    for i, j in zip(*np.nonzero(np.triu(sim, k=1))):  # beta Sim(i,j) (s_i t_i - s_j t_j)^2, i < j
        c = np.zeros(n + n_pat)
        c[i], c[j] = s[i], -s[j]
        h += 2 * prm.beta * sim[i, j] * np.outer(c, c)
    g = np.concatenate([prm.lam * (np.zeros(n) if q is None else q), p])
    return h, g


def dense_solution(f, sim, p, q, prm: RankingParams):
    h, g = dense_quadratic(f, sim, p, q, prm)
    z = np.linalg.solve(h, g)
    return z[: f.shape[0]], z[f.shape[0]:]


def solve(f, sim, p, q, prm: RankingParams, **kw):
    kw = {**TIGHT, **kw}
    return collaborative_rank(graph_of(f, sim), p, q, prm, **kw)


PARAMS = [
    RankingParams(alpha=1.0, beta=0.5, gamma=0.1, lam=1.0),
    RankingParams(alpha=2.0, beta=3.0, gamma=0.5, lam=0.3, normalized=True),
]


@pytest.mark.parametrize("solver", ["schur", "block"])
@pytest.mark.parametrize("prm", PARAMS, ids=["plain", "normalized"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_dense_closed_form(seed: int, prm: RankingParams, solver: str) -> None:
    f, sim, p, q = random_inputs(seed)
    t_ref, u_ref = dense_solution(f, sim, p, q, prm)
    # The unconstrained optimum is nonnegative (Stieltjes Hessian, nonnegative g), so it is
    # also the constrained one and clipping at 0 never binds.
    assert t_ref.min() >= 0 and u_ref.min() >= 0
    res = solve(f, sim, p, q, prm, solver=solver)
    assert res.converged
    np.testing.assert_allclose(res.t.numpy(), t_ref, atol=1e-6)
    np.testing.assert_allclose(res.u.numpy(), u_ref, atol=1e-6)


@pytest.mark.parametrize("prm", PARAMS, ids=["plain", "normalized"])
def test_objective_matches_dense_quadratic(prm: RankingParams) -> None:
    f, sim, p, q = random_inputs(3)
    h, g = dense_quadratic(f, sim, p, q, prm)
    z = np.random.default_rng(4).random(N + L)
    t, u = torch.tensor(z[:N]), torch.tensor(z[N:])
    value = objective(t, u, graph_of(f, sim), torch.tensor(p), torch.tensor(q), prm).item()
    assert value == pytest.approx(z @ h @ z / 2 - g @ z, rel=1e-12)


@pytest.mark.parametrize("prm", PARAMS, ids=["plain", "normalized"])
def test_block_objective_non_increasing(prm: RankingParams) -> None:
    f, sim, p, q = random_inputs(5, n=200, n_patterns=12, density=0.05)
    res = solve(f, sim, p, q, prm, solver="block")
    assert res.converged and res.iterations > 3
    steps = np.diff(res.objectives)
    assert (steps <= 1e-12 * np.abs(res.objectives[1:])).all()
    assert res.objectives[-1] == pytest.approx(solve(f, sim, p, q, prm).objectives[0], rel=1e-9)


@pytest.mark.parametrize("solver", ["schur", "block"])
@pytest.mark.parametrize("prm", PARAMS, ids=["plain", "normalized"])
def test_gradient_vanishes_at_solution(prm: RankingParams, solver: str) -> None:
    f, sim, p, q = random_inputs(6)
    res = solve(f, sim, p, q, prm, solver=solver)
    t, u = res.t.clone().requires_grad_(), res.u.clone().requires_grad_()
    objective(t, u, graph_of(f, sim), torch.tensor(p), torch.tensor(q), prm).backward()
    assert t.grad.abs().max() < 1e-8 and u.grad.abs().max() < 1e-8


@pytest.mark.parametrize("solver", ["schur", "block"])
def test_no_patterns_depends_on_prior_and_similarity(solver: str) -> None:
    f, sim, _, q = random_inputs(7, n_patterns=0)
    prm = RankingParams(beta=2.0, gamma=0.3, lam=1.5)
    res = solve(f, sim, np.zeros(0), q, prm, solver=solver)
    assert res.u.shape == (0,) and res.converged
    laplacian = np.diag(sim.sum(1)) - sim
    expected = np.linalg.solve(prm.beta * laplacian + prm.gamma * np.eye(N), prm.lam * q / 2)
    np.testing.assert_allclose(res.t.numpy(), expected, atol=1e-9)


@pytest.mark.parametrize("solver", ["schur", "block"])
def test_no_patterns_no_prior_is_zero(solver: str) -> None:
    f, sim, _, _ = random_inputs(8, n_patterns=0)
    res = solve(f, sim, np.zeros(0), None, RankingParams(), solver=solver)
    assert res.converged and res.t.abs().max() == 0


@pytest.mark.parametrize("solver", ["schur", "block"])
def test_beta_zero_equals_no_similarity_edges(solver: str) -> None:
    f, sim, p, q = random_inputs(9)
    prm = RankingParams(beta=0.0)
    with_edges = solve(f, sim, p, q, prm, solver=solver)
    without = collaborative_rank(build_graph(N, L, *np.nonzero(f)), p, q, prm, solver=solver, **TIGHT)
    t_ref, u_ref = dense_solution(f, np.zeros((N, N)), p, q, prm)
    for res in (with_edges, without):
        np.testing.assert_allclose(res.t.numpy(), t_ref, atol=1e-9)
        np.testing.assert_allclose(res.u.numpy(), u_ref, atol=1e-9)


def test_normalized_ranks_strong_pattern_alerts_above_isolated() -> None:
    # Pattern 0 (p=0.9): alerts 0-2; pattern 1 (p=0.1): alerts 3-4; alerts 5-9 in none.
    # Sim links alerts within each pattern and one isolated pair (8, 9).
    pairs = [(0, 1), (1, 2), (3, 4), (8, 9)]
    sr = [i for i, j in pairs] + [j for i, j in pairs]
    graph = build_graph(10, 2, [0, 1, 2, 3, 4], [0, 0, 0, 1, 1], sr, sr[4:] + sr[:4], [1.0] * 8)
    q = np.full(10, 0.05)
    res = collaborative_rank(graph, [0.9, 0.1], q, RankingParams(normalized=True))
    assert res.converged
    t = res.t.numpy()
    assert t[:3].min() > t[3:5].max() > t[5:].max()
    assert res.u[0] > res.u[1]


def test_normalized_invariant_to_pattern_size() -> None:
    # Same p, one pattern with 2 alerts, one with 20: normalisation keeps u comparable.
    fa = list(range(22))
    fp = [0, 0] + [1] * 20
    graph = build_graph(22, 2, fa, fp)
    u = collaborative_rank(graph, [0.5, 0.5], None, RankingParams(normalized=True), **TIGHT).u
    assert u[0].item() == pytest.approx(u[1].item(), rel=1e-9)


def test_duplicates_and_self_loops() -> None:
    f, sim, p, q = random_inputs(10)
    fa, fp = np.nonzero(f)
    sr, sc = np.nonzero(sim)
    w = sim[sr, sc]
    graph = build_graph(
        N, L, np.r_[fa, fa], np.r_[fp, fp],  # F is binary: duplicates count once
        np.r_[sr, sc, 3], np.r_[sc, sr, 3], np.r_[w / 2, w / 2, 5.0],  # halves sum; loop dropped
    )
    res = collaborative_rank(graph, p, q, PARAMS[0], **TIGHT)
    t_ref, _ = dense_solution(f, sim, p, q, PARAMS[0])
    np.testing.assert_allclose(res.t.numpy(), t_ref, atol=1e-6)


@pytest.mark.parametrize("solver", ["schur", "block"])
def test_directed_similarity_solves_the_row_scaled_system(solver: str) -> None:
    """``symmetric=False``: rows of Sim weighted apart (a tuple's size, `scale_by_tuple_size`);
    the t-equation (alpha D_F + beta (D_Sim - Sim) + gamma I) t = alpha F u + lam q / 2 with the
    row sums D_Sim of the directed Sim, solved by BiCGSTAB; no objective is reported."""
    f, sim, p, q = random_inputs(3)
    sim = sim * np.random.default_rng(4).uniform(0.5, 3.0, (N, 1))  # row i scaled by its own factor
    fa, fp = np.nonzero(f)
    sr, sc = np.nonzero(sim)
    graph = build_graph(N, L, fa, fp, sr, sc, sim[sr, sc], symmetric=False)
    prm = RankingParams(alpha=0.7, beta=1.3, gamma=0.4, lam=1.1)
    res = collaborative_rank(graph, p, q, prm, solver=solver, **TIGHT)
    n_alerts_of = f.sum(0)
    a_t = prm.alpha * np.diag(f.sum(1)) + prm.beta * (np.diag(sim.sum(1)) - sim) + prm.gamma * np.eye(N)
    # u = (p/2 + alpha F't) / (alpha |l| + gamma), substituted into the t-equation
    to_u = prm.alpha * f.T / (prm.alpha * n_alerts_of + prm.gamma)[:, None]
    lhs = a_t - prm.alpha * f @ to_u
    rhs = prm.lam * q / 2 + prm.alpha * f @ (p / 2 / (prm.alpha * n_alerts_of + prm.gamma))
    np.testing.assert_allclose(res.t.numpy(), np.linalg.solve(lhs, rhs), atol=1e-7)
    assert res.objectives == [] and (res.t.numpy() >= 0).all()


def test_rejects_one_sided_similarity_and_bad_inputs() -> None:
    with pytest.raises(DataError, match="symmetric"):
        build_graph(4, 1, [0], [0], [0, 1], [1, 2], [1.0, 1.0])
    graph = build_graph(4, 1, [0], [0])
    with pytest.raises(DataError, match=">= 0"):
        collaborative_rank(graph, [-0.1], None)
    with pytest.raises(DataError, match="entries"):
        collaborative_rank(graph, [0.5], np.ones(3))
    with pytest.raises(DataError, match="outside"):
        build_graph(4, 1, [4], [0])
    with pytest.raises(ConfigError, match="gamma"):
        RankingParams(gamma=0.0)
    with pytest.raises(ConfigError, match="solver"):
        collaborative_rank(graph, [0.5], None, solver="jacobi")


def test_nonnegative_on_adversarial_weights() -> None:
    # Heavy similarity, zero prior on most alerts: the solve still never needs clipping.
    for seed, (alpha, beta) in zip(range(4), itertools.product([0.1, 10.0], [0.1, 10.0])):
        f, sim, p, q = random_inputs(20 + seed, density=0.4)
        q[q < 0.8] = 0
        t_ref, u_ref = dense_solution(f, sim, p, q, RankingParams(alpha=alpha, beta=beta, gamma=1e-3))
        assert t_ref.min() >= 0 and u_ref.min() >= 0


# ----------------------------------------------------------------------------- agreement="lift"

LIFT = [RankingParams(alpha=1.0, beta=0.5, gamma=0.1, lam=1.0, agreement="lift"),
        RankingParams(alpha=2.0, beta=3.0, gamma=0.5, lam=0.3, normalized=True, agreement="lift")]


def dense_lift_step(f, sim, p, q, prm: RankingParams, t: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The lift t-update by hand: minimise J over t with u fixed and the agreement term kept only
    for the pairs where the pattern scores above the alert (a_j t_j < b_l u_l)."""
    n, n_pat = f.shape
    a = inv_sqrt(f.sum(1)) if prm.normalized else np.ones(n)
    b = inv_sqrt(f.sum(0)) if prm.normalized else np.ones(n_pat)
    below = f & (a[:, None] * t[:, None] < b[None, :] * u[None, :])
    h, _ = dense_quadratic(np.zeros_like(f), sim, p, q, prm)
    h = h[:n, :n]
    g = prm.lam * q
    for j, l in zip(*np.nonzero(below)):
        h[j, j] += 2 * prm.alpha * a[j] ** 2
        g[j] += 2 * prm.alpha * a[j] * b[l] * u[l]
    return np.linalg.solve(h, g)


@pytest.mark.parametrize("prm", LIFT, ids=["plain", "normalized"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lift_is_a_fixed_point_of_both_updates(seed: int, prm: RankingParams) -> None:
    """u is the closed form of the objective given t (all pairs), and t is the lift t-update
    given u, each computed by hand with dense matrices."""
    f, sim, p, q = random_inputs(seed)
    res = solve(f, sim, p, q, prm)
    assert res.converged and res.objectives == []
    t, u = res.t.numpy(), res.u.numpy()
    n = f.shape[0]
    h, g = dense_quadratic(f, sim, p, q, prm)
    u_closed = (g[n:] - h[n:, :n] @ t) / np.diag(h)[n:]  # dJ/du = 0 with t fixed
    np.testing.assert_allclose(u, u_closed, atol=1e-9)
    np.testing.assert_allclose(t, dense_lift_step(f, sim, p, q, prm, t, u), atol=1e-8)


@pytest.mark.parametrize("prm", LIFT, ids=["plain", "normalized"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lift_never_lowers_an_alert_below_its_score_without_patterns(seed: int, prm: RankingParams) -> None:
    """Patterns only pull up: every alert scores at least what it scores with alpha = 0, and some
    alert in a pattern scores more; the two-sided objective lowers some alert instead."""
    from dataclasses import replace

    f, sim, p, q = random_inputs(seed)
    alone = solve(f, sim, p, q, replace(prm, alpha=0.0)).t.numpy()
    lifted = solve(f, sim, p, q, prm).t.numpy()
    two_sided = solve(f, sim, p, q, replace(prm, agreement="two_sided")).t.numpy()
    assert (lifted >= alone - 1e-9).all()
    assert (lifted > alone + 1e-6).any()
    assert (two_sided < alone - 1e-6).any()


def test_lift_equals_two_sided_when_every_pattern_scores_above_its_alerts() -> None:
    """With large pattern scores p no alert is above its patterns, so no pair is dropped and the
    lift fixed point is the objective's optimum."""
    f, sim, p, q = random_inputs(3)
    prm = RankingParams(alpha=1.0, beta=0.5, gamma=0.1, lam=1.0, agreement="lift")
    res = solve(f, sim, 50 + p, q, prm)
    t_opt, u_opt = dense_solution(f, sim, 50 + p, q, RankingParams(alpha=1.0, beta=0.5, gamma=0.1, lam=1.0))
    fa, fp = np.nonzero(f)
    assert (t_opt[fa] < u_opt[fp]).all()
    np.testing.assert_allclose(res.t.numpy(), t_opt, atol=1e-8)
    np.testing.assert_allclose(res.u.numpy(), u_opt, atol=1e-8)


def test_unknown_agreement_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="agreement"):
        RankingParams(agreement="both")


def test_lift_says_when_it_stops_before_its_fixed_point() -> None:
    """One active set allowed: the solution is not checked against a second one."""
    f, sim, p, q = random_inputs(4)
    res = solve(f, sim, p, q, LIFT[0], max_iter=1)
    assert not res.converged and res.iterations == 1


def test_lift_without_prior_reaches_its_fixed_point_in_few_active_sets() -> None:
    """No prior and patterns of ~100 alerts: alternating the two updates would contract by about
    100 / (100 + gamma) a sweep; the active-set solve needs a handful of sets."""
    f, sim, p, _ = random_inputs(5, n=300, n_patterns=4, density=0.02)
    f = f | (np.random.default_rng(5).random(f.shape) < 0.3)
    prm = RankingParams(alpha=1.0, beta=0.5, gamma=0.1, lam=1.0, agreement="lift")
    res = solve(f, sim, p, None, prm, max_iter=20)
    assert res.converged and res.iterations <= 10
    t, u = res.t.numpy(), res.u.numpy()
    h, g = dense_quadratic(f, sim, p, None, prm)
    np.testing.assert_allclose(u, (g[300:] - h[300:, :300] @ t) / np.diag(h)[300:], atol=1e-9)
    np.testing.assert_allclose(t, dense_lift_step(f, sim, p, np.zeros(300), prm, t, u), atol=1e-8)
