"""Collaborative ranking (the reference method, ../shared/docs/method.md section 4, called
method.md below; docs/method.md states what this code does): one convex objective over alert scores
``t`` (n,) and pattern scores ``u`` (L,)::

    J(t, u) = - p.u - lam * q.t
              + alpha * sum_{j,l} F[j,l] (t_j - u_l)^2
              + beta  * sum_{i<j} Sim(i,j) (t_i - t_j)^2
              + gamma * (|t|^2 + |u|^2),        minimised over t, u >= 0,

and its lifting variant (``agreement="lift"``, below), in which patterns only raise alerts.

Derivation check. With ``Sim`` the full symmetric matrix (both directions stored),
``sum_{i<j} Sim(i,j) (t_i - t_j)^2 = t' L_Sim t`` with ``L_Sim = D_Sim - Sim``, whose
gradient is ``2 L_Sim t``. Setting ``dJ/dt = 0``::

    -lam q + 2 alpha (D_F t - F u) + 2 beta L_Sim t + 2 gamma t = 0
    =>  (alpha D_F + beta L_Sim + gamma I) t = alpha F u + lam q / 2.

method.md writes ``2 beta L_Sim``: that is off by a factor 2 for the stated ``i<j`` sum (it
is right only if the sum ran over ordered pairs). This module uses ``beta L_Sim``. The
``u`` update of method.md, ``u_l = (p_l/2 + alpha sum_j F[j,l] t_j) / (alpha |l| + gamma)``,
is correct.

Nonnegativity. The joint Hessian is symmetric positive definite (gamma > 0) with
nonpositive off-diagonal entries, i.e. a Stieltjes matrix, so its inverse is entrywise
nonnegative; the linear term ``(lam q, p)`` is nonnegative, hence the unconstrained optimum
is already nonnegative and the constraints ``t, u >= 0`` are inactive. The same holds for
each block (``alpha D_F + beta L_Sim + gamma I`` is a nonsingular M-matrix and its
right-hand side is nonnegative when ``u >= 0``), so clipping at 0 only removes round-off of
the conjugate-gradient solve. This needs ``p, q >= 0``, which is checked.

Normalised variant (``normalized=True``, manifold ranking): both graph terms use the
symmetric-normalised Laplacian of their own graph::

    alpha * sum_{j,l} F[j,l] (t_j / sqrt(d_j) - u_l / sqrt(|l|))^2
    + beta * sum_{i<j} Sim(i,j) (t_i / sqrt(s_i) - t_j / sqrt(s_j))^2

with ``d_j`` the number of patterns of alert j, ``|l|`` the size of pattern l and ``s_i``
the similarity degree (nodes of degree 0 drop out of a term). Since ``-lam q.t + gamma |t|^2
= gamma |t - lam q / (2 gamma)|^2 + const`` this is the manifold-ranking objective of Zhou
et al. (2004) with query vector ``lam q / (2 gamma)`` on alerts and ``p / (2 gamma)`` on
patterns; normalisation stops hub patterns and dense similarity clusters from dominating.

Both variants share the updates below with scalings ``a`` (alerts, F term), ``b``
(patterns) and ``s`` (alerts, Sim term), all ones when unnormalised::

    u = (p/2 + alpha Fw' t) / (alpha |l| b^2 + gamma),     Fw = diag(a) F diag(b)
    (alpha d a^2 + beta s_deg s^2 + gamma) t - beta s*(Sim (s*t)) = alpha Fw u + lam q / 2

Lift-only agreement (``agreement="lift"``). The agreement term pulls an alert toward each of
its patterns' scores from above as well as from below, so a pattern whose alerts are mostly
plain squeezes its few suspicious ones toward their mean. With ``lift``, pattern scores keep
the closed form above (their p plus the mean of their alerts' scores), while an alert's
update counts only the patterns scoring above it, i.e. the t-update minimises J with
``F[j,l] (t_j - u_l)^2`` replaced by ``F[j,l] max(0, u_l - t_j)^2``: a pattern lifts its alerts
that score below it and never lowers one. The two updates no longer descend one function;
their fixed point is found by active sets from the scores without patterns (alpha = 0):
with the pairs that lift fixed, both updates together are one linear system, and the pairs
are taken again from its solution until they stop changing (`_lift_solve`).

Solvers. ``block`` alternates these two exact updates (method.md). Each sweep contracts by
about ``alpha / (alpha + gamma)``, so small gamma costs hundreds of sweeps of CG solves.
``schur`` substitutes the linear map t -> u into the t equation and solves the reduced
(Schur complement) system ``(A - alpha^2 Fw diag_u^-1 Fw') t = lam q/2 + alpha Fw diag_u^-1 p/2``
by one CG; the Schur complement of an M-matrix is an M-matrix and the right-hand side is
nonnegative, so t >= 0 again. Same optimum, one outer iteration.

Directed similarity (``build_graph(..., symmetric=False)``). The similarity term's rows may be
scaled apart, alert i's edges by its own factor (`car.content.similarity.scale_by_tuple_size`:
a tuple of m identical alerts feels its look-alikes' pull m^power times, so that a flood does
not anchor itself). The t-equation then holds ``beta (D_Sim - Sim) t`` with a nonsymmetric
``Sim`` and is no longer the gradient of J: it is still a row-wise strictly diagonally dominant
M-matrix with a nonnegative right-hand side (t >= 0 as above), solved by BiCGSTAB instead of
CG, and ``RankingResult.objectives`` stays empty.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from car.errors import ConfigError, DataError
from car.progress import Progress

__all__ = [
    "RankingGraph",
    "RankingParams",
    "RankingResult",
    "build_graph",
    "collaborative_rank",
    "objective",
]

DTYPE = torch.float64
AGREEMENTS = ("lift", "two_sided")
ArrayLike = Tensor | np.ndarray | list


@dataclass(frozen=True)
class RankingGraph:
    """Alert-pattern occurrences F (binary, n x L) and alert similarity Sim (n x n).

    f_alert, f_pattern: (nnz_F,) int64, unique (alert, pattern) pairs.
    sim: (n, n) float64 sparse CSR, zero diagonal; symmetric (each unordered pair stored in
        both directions; the objective counts it once) unless ``symmetric`` is False (directed
        similarity, see the module docstring).
    f_degree: (n,) patterns per alert; pattern_size: (L,) alerts per pattern;
    sim_degree: (n,) row sums of ``sim``.
    """

    n: int
    n_patterns: int
    f_alert: Tensor
    f_pattern: Tensor
    sim: Tensor
    f_degree: Tensor
    pattern_size: Tensor
    sim_degree: Tensor
    symmetric: bool = True


@dataclass(frozen=True)
class RankingParams:
    """Weights of the objective (alpha, beta, lam >= 0, gamma > 0); ``normalized`` selects
    the manifold-ranking variant; ``agreement`` is ``two_sided`` (the objective as written) or
    ``lift`` (patterns only raise the alerts that score below them, see the module docstring)."""

    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 0.1
    lam: float = 1.0
    normalized: bool = False
    agreement: str = "two_sided"

    def __post_init__(self) -> None:
        if self.agreement not in AGREEMENTS:
            raise ConfigError(f"ranking.agreement={self.agreement!r}: use one of {', '.join(AGREEMENTS)}")
        if not self.gamma > 0:
            raise ConfigError(f"ranking.gamma must be > 0 (strict convexity), got {self.gamma}")
        for name in ("alpha", "beta", "lam"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"ranking.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class RankingResult:
    """Solution ``t`` (n,), ``u`` (L,); ``objectives[k]`` is J after outer iteration k+1 (empty
    for ``agreement="lift"``, whose updates do not minimise J)."""

    t: Tensor
    u: Tensor
    objectives: list[float] = field(default_factory=list)
    iterations: int = 0
    converged: bool = False
    cg_iterations: int = 0


def build_graph(
    n: int,
    n_patterns: int,
    f_alert: ArrayLike,
    f_pattern: ArrayLike,
    sim_row: ArrayLike | None = None,
    sim_col: ArrayLike | None = None,
    sim_weight: ArrayLike | None = None,
    symmetric: bool = True,
) -> RankingGraph:
    """Build the graph from COO arrays.

    F: pairs ``(f_alert[k], f_pattern[k])``; duplicates count once (F is binary).
    Sim: ``(sim_row[k], sim_col[k], sim_weight[k])`` with every unordered pair {i, j}
    present in both directions with the same weight, so that ``Sim`` is the full symmetric
    matrix and ``sum_{i<j} Sim(i,j) (t_i - t_j)^2 = t' (D - Sim) t``; ``symmetric=False``
    takes the weights of the two directions as given (a directed similarity, row i pulling
    alert i; see the module docstring). Duplicate entries are summed, self-loops are dropped
    (they do not enter the objective). Omit Sim for no edges.
    """
    f_alert, f_pattern = _index(f_alert, n, "f_alert"), _index(f_pattern, n_patterns, "f_pattern")
    if f_alert.shape != f_pattern.shape:
        raise DataError(f"f_alert and f_pattern differ in length: {f_alert.numel()} vs {f_pattern.numel()}")
    key = torch.unique(f_alert * max(n_patterns, 1) + f_pattern)
    f_alert, f_pattern = key // max(n_patterns, 1), key % max(n_patterns, 1)
    sim, sim_degree = _sim_csr(n, sim_row, sim_col, sim_weight, symmetric)
    return RankingGraph(
        n=n,
        n_patterns=n_patterns,
        f_alert=f_alert,
        f_pattern=f_pattern,
        sim=sim,
        f_degree=torch.bincount(f_alert, minlength=n).to(DTYPE),
        pattern_size=torch.bincount(f_pattern, minlength=n_patterns).to(DTYPE),
        sim_degree=sim_degree,
        symmetric=symmetric,
    )


def objective(t: Tensor, u: Tensor, graph: RankingGraph, p: Tensor, q: Tensor | None, params: RankingParams) -> Tensor:
    """J(t, u) (normalised form if ``params.normalized``) as a differentiable scalar.

    t: (n,), u: (L,), p: (L,), q: (n,) or None (no prior term); all float64.
    """
    a, b, s = _scalings(graph, params.normalized)
    diff = (a * t)[graph.f_alert] - (b * u)[graph.f_pattern]
    x = s * t
    sim_term = (graph.sim_degree * x * x).sum() - x.dot(graph.sim @ x)
    value = -p.dot(u) + params.alpha * diff.dot(diff) + params.beta * sim_term
    value = value + params.gamma * (t.dot(t) + u.dot(u))
    return value if q is None else value - params.lam * q.dot(t)


def collaborative_rank(
    graph: RankingGraph,
    p: ArrayLike,
    q: ArrayLike | None = None,
    params: RankingParams | None = None,
    *,
    solver: Literal["schur", "block"] = "schur",
    tol: float = 1e-8,
    max_iter: int = 1000,
    cg_tol: float = 1e-10,
    cg_max_iter: int = 1000,
) -> RankingResult:
    """Minimise J over t (n,) >= 0 and u (L,) >= 0.

    p: (L,) pattern dependency scores >= 0; q: (n,) alert prior >= 0 or None.
    ``solver="block"``: method.md's alternation, u in closed form then t by Jacobi-
    preconditioned CG warm-started at the previous t, both clipped at 0; stops when the
    largest change of t and u, relative to their largest entry, is <= tol (``max_iter``
    sweeps at most). ``solver="schur"`` (default): one CG on the reduced system for t (its
    extra matvec costs nnz(F)), then u; ``tol``/``max_iter`` are unused.
    ``cg_tol`` is CG's relative residual tolerance, ``cg_max_iter`` its step limit.
    ``params.agreement="lift"`` always solves by active sets (`_lift_solve`), starting from the
    scores without patterns; ``solver`` and ``tol`` are then unused, ``max_iter`` caps the sets.
    """
    if solver not in ("schur", "block"):
        raise ConfigError(f"ranking.solver must be 'schur' or 'block', got {solver!r}")
    params = params or RankingParams()
    p = _scores(p, graph.n_patterns, "p")
    q = None if q is None else _scores(q, graph.n, "q")
    ops = _Operators(graph, params)
    prior = torch.zeros(graph.n, dtype=DTYPE) if q is None else params.lam / 2 * q
    if params.agreement == "lift":
        alone = replace(params, alpha=0.0)
        start = _schur_solve(graph, p, q, alone, _Operators(graph, alone), prior, cg_tol, cg_max_iter)
        result = _lift_solve(p, ops, prior, start.t, max_iter, cg_tol, cg_max_iter)
        result.cg_iterations += start.cg_iterations
        return result
    if solver == "schur":
        return _schur_solve(graph, p, q, params, ops, prior, cg_tol, cg_max_iter)
    return _block_descent(graph, p, q, params, ops, prior, tol, max_iter, cg_tol, cg_max_iter)


def _schur_solve(
    graph: RankingGraph,
    p: Tensor,
    q: Tensor | None,
    params: RankingParams,
    ops: _Operators,
    prior: Tensor,
    cg_tol: float,
    cg_max_iter: int,
) -> RankingResult:
    """Solve the reduced system for t by CG, then u = u(t)."""
    rhs = ops.rhs_reduced(p, prior)
    t, steps, converged = _krylov(graph)(ops.matvec_reduced, rhs, torch.zeros_like(rhs), ops.diag_reduced(),
                                         cg_tol, cg_max_iter)
    t.clamp_(min=0)
    u = ops.update_u(t, p)
    objectives = [objective(t, u, graph, p, q, params).item()] if graph.symmetric else []
    return RankingResult(t, u, objectives, 1, converged, steps)


def _block_descent(
    graph: RankingGraph,
    p: Tensor,
    q: Tensor | None,
    params: RankingParams,
    ops: _Operators,
    prior: Tensor,
    tol: float,
    max_iter: int,
    cg_tol: float,
    cg_max_iter: int,
) -> RankingResult:
    """Alternate the exact u and t updates until the relative step is <= tol."""
    t = torch.zeros(graph.n, dtype=DTYPE)
    u = torch.zeros(graph.n_patterns, dtype=DTYPE)
    result = RankingResult(t=t, u=u)
    with Progress("ranking: block descent", unit="iterations") as progress:
        for _ in range(max_iter):
            u_new = ops.update_u(t, p)
            t_new, steps, _ = _krylov(graph)(ops.matvec_t, ops.rhs_t(u_new, prior), t, ops.diag_t, cg_tol, cg_max_iter)
            t_new.clamp_(min=0)
            change = max(_max_abs(t_new - t), _max_abs(u_new - u))
            scale = max(_max_abs(t_new), _max_abs(u_new), torch.finfo(DTYPE).tiny)
            t, u = t_new, u_new
            result.iterations += 1
            result.cg_iterations += steps
            if graph.symmetric:
                result.objectives.append(objective(t, u, graph, p, q, params).item())
            progress.update(result.iterations, f"relative change {change / scale:.1e}, stops at {tol:.0e}")
            if change <= tol * scale:
                result.converged = True
                break
    result.t, result.u = t, u
    return result


def _lift_solve(p: Tensor, ops: _Operators, prior: Tensor, t: Tensor, max_iter: int, cg_tol: float,
                cg_max_iter: int) -> RankingResult:
    """The lifting fixed point by active sets, from ``t``. With the pairs whose pattern scores
    above the alert fixed, u = u(t) (over all pairs) substituted into the lifted t-equation is
    one linear system, nonsymmetric (u sees every alert of a pattern, an alert only the patterns
    above it; unnormalised, its rows are strictly diagonally dominant with nonpositive
    off-diagonal entries, an M-matrix), solved by BiCGSTAB; the pairs are then
    taken again from the solution, until they no longer change (at most ``max_iter`` times).
    Alternating the two updates instead contracts by about alpha |l| / (alpha |l| + gamma) per
    sweep: thousands of sweeps for large patterns when no prior anchors the scores."""
    result = RankingResult(t=t, u=ops.update_u(t, p))
    below = ops.below(t, result.u)
    with Progress("ranking: lifting", unit="active sets") as progress:
        for _ in range(max_iter):
            lifted = ops.lifting(below)
            t, steps, solved = _bicgstab(lifted.matvec_reduced, lifted.rhs_reduced(p, prior), t,
                                         lifted.diag_reduced(), cg_tol, cg_max_iter)
            t.clamp_(min=0)
            result.iterations += 1
            result.cg_iterations += steps
            progress.update(result.iterations, f"{int(below.sum())} of {below.numel()} alert-pattern pairs lift")
            result.u = ops.update_u(t, p)
            now = ops.below(t, result.u)
            if torch.equal(now, below):
                result.converged = solved
                break
            below = now
    result.t = t
    return result


class _Operators:
    """Matrix-free pieces of the block updates for one graph and parameter set. ``f_weight``
    weights F where it acts on u (the t-equation), ``ft_weight`` where it acts on t (the
    u-equation); they differ only in the lifted operators, whose t-equation keeps the pairs
    with the pattern above the alert."""

    def __init__(self, graph: RankingGraph, params: RankingParams) -> None:
        self.graph, self.params = graph, params
        self.a, self.b, self.s = _scalings(graph, params.normalized)
        self.f_weight = self.ft_weight = self.a[graph.f_alert] * self.b[graph.f_pattern]
        alpha, beta, gamma = params.alpha, params.beta, params.gamma
        self.diag_u = alpha * graph.pattern_size * self.b**2 + gamma
        self.diag_t = alpha * graph.f_degree * self.a**2 + beta * graph.sim_degree * self.s**2 + gamma

    def below(self, t: Tensor, u: Tensor) -> Tensor:
        """(nnz_F,) bool: the pattern of each pair scores above its alert (``b u_l > a t_j``)."""
        return (self.a * t)[self.graph.f_alert] < (self.b * u)[self.graph.f_pattern]

    def lifting(self, below: Tensor) -> _Operators:
        """These operators with the t-equation's agreement term kept only for the pairs ``below``
        (the u-equation keeps all): the system of ``agreement="lift"`` for that set of pairs."""
        out = copy.copy(self)
        out.f_weight = self.f_weight * below
        degree = torch.zeros(self.graph.n, dtype=DTYPE).index_add_(0, self.graph.f_alert, below.to(DTYPE))
        out.diag_t = self.diag_t - self.params.alpha * (self.graph.f_degree - degree) * self.a**2
        return out

    def f_times(self, u: Tensor) -> Tensor:
        """Fw u, shape (n,)."""
        out = torch.zeros(self.graph.n, dtype=DTYPE)
        return out.index_add_(0, self.graph.f_alert, self.f_weight * u[self.graph.f_pattern])

    def ft_times(self, t: Tensor) -> Tensor:
        """Fw' t, shape (L,)."""
        out = torch.zeros(self.graph.n_patterns, dtype=DTYPE)
        return out.index_add_(0, self.graph.f_pattern, self.ft_weight * t[self.graph.f_alert])

    def update_u(self, t: Tensor, p: Tensor) -> Tensor:
        """Exact minimiser over u >= 0 for fixed t: (p/2 + alpha Fw' t) / diag_u, shape (L,)."""
        return ((p / 2 + self.params.alpha * self.ft_times(t)) / self.diag_u).clamp_(min=0)

    def rhs_t(self, u: Tensor, prior: Tensor) -> Tensor:
        """alpha Fw u + lam q / 2, shape (n,)."""
        return self.params.alpha * self.f_times(u) + prior

    def matvec_t(self, t: Tensor) -> Tensor:
        """A t = (alpha D_F a^2 + beta L_s + gamma I) t, shape (n,)."""
        return self.diag_t * t - self.params.beta * self.s * (self.graph.sim @ (self.s * t))

    def matvec_reduced(self, t: Tensor) -> Tensor:
        """Schur complement (A - alpha^2 Fw diag_u^-1 Fw') t, shape (n,)."""
        return self.matvec_t(t) - self.params.alpha**2 * self.f_times(self.ft_times(t) / self.diag_u)

    def rhs_reduced(self, p: Tensor, prior: Tensor) -> Tensor:
        """lam q / 2 + alpha Fw diag_u^-1 p / 2, shape (n,)."""
        return prior + self.params.alpha * self.f_times(p / 2 / self.diag_u)

    def diag_reduced(self) -> Tensor:
        """Diagonal of the Schur complement (positive), shape (n,)."""
        per_edge = self.f_weight * self.ft_weight / self.diag_u[self.graph.f_pattern]
        drop = torch.zeros(self.graph.n, dtype=DTYPE).index_add_(0, self.graph.f_alert, per_edge)
        return self.diag_t - self.params.alpha**2 * drop


def _krylov(graph: RankingGraph) -> Callable[..., tuple[Tensor, int, bool]]:
    """CG for a symmetric similarity, BiCGSTAB for a directed one (same signature)."""
    return _cg if graph.symmetric else _bicgstab


def _cg(
    matvec: Callable[[Tensor], Tensor], b: Tensor, x0: Tensor, diag: Tensor, tol: float, max_iter: int
) -> tuple[Tensor, int, bool]:
    """Jacobi-preconditioned CG for SPD ``matvec`` from x0; stops at |r| <= tol |b|.

    Returns (x, steps, converged).
    """
    b_norm = b.norm().item()
    if b_norm == 0:
        return torch.zeros_like(b), 0, True
    x = x0.clone()
    r = b - matvec(x)
    z = r / diag
    direction = z.clone()
    rz = r.dot(z).item()
    with Progress("ranking: conjugate gradient", unit="steps") as progress:
        for step in range(max_iter):
            r_norm = r.norm().item()
            progress.update(step, f"relative residual {r_norm / b_norm:.1e}, stops at {tol:.0e}")
            if r_norm <= tol * b_norm:
                return x, step, True
            a_dir = matvec(direction)
            alpha = rz / direction.dot(a_dir).item()
            x.add_(direction, alpha=alpha)
            r.sub_(a_dir, alpha=alpha)
            torch.div(r, diag, out=z)
            rz, rz_old = r.dot(z).item(), rz
            direction.mul_(rz / rz_old).add_(z)
    return x, max_iter, r.norm().item() <= tol * b_norm


def _bicgstab(
    matvec: Callable[[Tensor], Tensor], b: Tensor, x0: Tensor, diag: Tensor, tol: float, max_iter: int
) -> tuple[Tensor, int, bool]:
    """Jacobi-preconditioned BiCGSTAB (van der Vorst) for a nonsingular, nonsymmetric ``matvec``
    from x0; stops at |r| <= tol |b|. Returns (x, steps, converged)."""
    b_norm = b.norm().item()
    if b_norm == 0:
        return torch.zeros_like(b), 0, True
    x = x0.clone()
    r = b - matvec(x)
    r0 = r.clone()
    rho = step_a = omega = 1.0
    v = direction = torch.zeros_like(b)
    for step in range(max_iter):
        if r.norm().item() <= tol * b_norm:
            return x, step, True
        rho_new = r0.dot(r).item()
        direction = r + (rho_new / rho) * (step_a / omega) * (direction - omega * v)
        y = direction / diag
        v = matvec(y)
        r0_v = r0.dot(v).item()
        if rho_new == 0 or r0_v == 0:  # breakdown (r orthogonal to r0): return what there is
            return x, step, False
        step_a = rho_new / r0_v
        s = r - step_a * v
        z = s / diag
        t = matvec(z)
        t_norm = t.dot(t).item()
        omega = t.dot(s).item() / t_norm if t_norm > 0 else 0.0
        x.add_(y, alpha=step_a).add_(z, alpha=omega)
        r = s - omega * t
        rho = rho_new
        if omega == 0:
            return x, step + 1, r.norm().item() <= tol * b_norm
    return x, max_iter, r.norm().item() <= tol * b_norm


def _scalings(graph: RankingGraph, normalized: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Per-node scalings (a, b, s): ones, or inverse square-root degrees (0 for degree 0)."""
    if not normalized:
        return torch.ones(graph.n, dtype=DTYPE), torch.ones(graph.n_patterns, dtype=DTYPE), torch.ones(graph.n, dtype=DTYPE)
    return _inv_sqrt(graph.f_degree), _inv_sqrt(graph.pattern_size), _inv_sqrt(graph.sim_degree)


def _inv_sqrt(degree: Tensor) -> Tensor:
    return torch.where(degree > 0, degree.clamp(min=torch.finfo(DTYPE).tiny).rsqrt(), 0.0)


def _sim_csr(n: int, row: ArrayLike | None, col: ArrayLike | None, weight: ArrayLike | None,
             symmetric: bool = True) -> tuple[Tensor, Tensor]:
    """Sim as CSR (n, n) (sorted columns, summed duplicates, no diagonal) and its row sums (n,);
    checked to list both directions of each pair unless not ``symmetric``."""
    if row is None or col is None or weight is None:
        if not (row is None and col is None and weight is None):
            raise DataError("give all of sim_row, sim_col, sim_weight, or none of them")
        row = col = torch.zeros(0, dtype=torch.int64)
        weight = torch.zeros(0, dtype=DTYPE)
    row, col = _index(row, n, "sim_row"), _index(col, n, "sim_col")
    weight = torch.as_tensor(weight, dtype=DTYPE).reshape(-1)
    if not (row.shape == col.shape == weight.shape):
        raise DataError(f"sim_row, sim_col, sim_weight differ in length: {row.numel()}, {col.numel()}, {weight.numel()}")
    if not bool(torch.isfinite(weight).all()) or bool((weight < 0).any()):
        raise DataError("sim_weight must be finite and >= 0")
    loops = row == col
    if bool(loops.any()):
        keep = ~loops
        row, col, weight = row[keep], col[keep], weight[keep]
    if symmetric:
        _check_both_directions(row, col, weight)
    key = row * n + col
    if not bool((key[1:] >= key[:-1]).all()):  # skip the sort for row-major input
        order = torch.from_numpy(np.argsort(key.numpy()))  # numpy's introsort: half of torch.sort's time
        key, weight = key[order], weight[order]
    if bool((key[1:] == key[:-1]).any()):
        key, inverse = torch.unique_consecutive(key, return_inverse=True)
        weight = torch.zeros(key.numel(), dtype=DTYPE).index_add_(0, inverse, weight)
    crow = torch.searchsorted(key, torch.arange(n + 1, dtype=torch.int64) * n)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        csr = torch.sparse_csr_tensor(crow, key % n, weight, (n, n), check_invariants=False)
    return csr, csr @ torch.ones(n, dtype=DTYPE)


def _check_both_directions(row: Tensor, col: Tensor, weight: Tensor) -> None:
    """Cheap necessary check that Sim lists each pair in both directions (not one triangle)."""
    upper = row < col
    n_upper, n_lower = int(upper.sum()), upper.numel() - int(upper.sum())
    w_upper = torch.where(upper, weight, 0.0).sum().item()
    w_lower = weight.sum().item() - w_upper
    if n_upper != n_lower or not math.isclose(w_upper, w_lower, rel_tol=1e-9, abs_tol=1e-12):
        raise DataError(
            f"Sim is not symmetric ({n_upper} entries above, {n_lower} below the diagonal): "
            "list every pair (i, j) also as (j, i) with the same weight"
        )


def _index(values: ArrayLike, size: int, name: str) -> Tensor:
    out = torch.as_tensor(values, dtype=torch.int64).reshape(-1)
    if out.numel() and (int(out.min()) < 0 or int(out.max()) >= size):
        raise DataError(f"{name} has indices outside [0, {size})")
    return out


def _scores(values: ArrayLike, size: int, name: str) -> Tensor:
    out = torch.as_tensor(values, dtype=DTYPE).reshape(-1)
    if out.numel() != size:
        raise DataError(f"{name} has {out.numel()} entries, expected {size}")
    if not bool(torch.isfinite(out).all()) or bool((out < 0).any()):
        raise DataError(f"{name} must be finite and >= 0 (the nonnegativity argument needs it)")
    return out


def _max_abs(x: Tensor) -> float:
    return x.abs().max().item() if x.numel() else 0.0
