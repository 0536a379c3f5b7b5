"""Hierarchical Pitman-Yor predictive model over a `ContextTree`, with per-depth learnable parameters.

    P(s|u) = (c(u,s) - d_k t(u,s) + (theta_k + d_k t(u,.)) P(s|pi(u))) / (theta_k + c(u,.)),  k = |u|

with t(u,s) = min(1, c(u,s)) (interpolated Kneser-Ney limit), P(s|parent of root) = 1/(K+1)
(K symbols plus one slot for unseen symbols) and a node with no counts passing its parent through.

Priors: ``"pitman_yor"`` learns d_k in (0,1) and theta_k > -d_k per depth; ``"dirichlet"`` fixes
d = 0 (hierarchical Dirichlet ablation); ``"ngram"`` is a plain fixed-order n-gram: d = 0 and only
depths 0 and ``order`` are used, i.e. the order-N context's counts smoothed by a Dirichlet toward
the (uniform-smoothed) unigram, with learnable strengths theta_0, theta_N and no backoff hierarchy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from car.temporal.context_tree import ChainCounts, ContextTree

PRIORS = ("pitman_yor", "dirichlet", "ngram")


def _per_depth(value: float | Sequence[float], depth: int) -> torch.Tensor:
    out = torch.as_tensor(value, dtype=torch.float32)
    if out.ndim == 0:
        return out.expand(depth + 1).clone()
    if out.shape != (depth + 1,):
        raise ValueError(f"expected a scalar or {depth + 1} values (depths 0..{depth}), got {tuple(out.shape)}")
    return out.clone()


def _inv_softplus(x: torch.Tensor) -> torch.Tensor:
    return x + torch.log(-torch.expm1(-x))


class PitmanYorTree(nn.Module):
    """Per-depth discounts and strengths of the hierarchical Pitman-Yor model, depths 0..depth.

    discount, strength: initial d_k and theta_k (scalar or one value per depth); discount is
    ignored (d = 0) for the ``dirichlet`` and ``ngram`` priors. order: n-gram order (default depth).
    """

    def __init__(
        self,
        depth: int,
        prior: str = "pitman_yor",
        discount: float | Sequence[float] = 0.5,
        strength: float | Sequence[float] = 1.0,
        order: int | None = None,
    ) -> None:
        super().__init__()
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
        self.depth, self.prior = depth, prior
        d0 = _per_depth(discount, depth) if prior == "pitman_yor" else torch.zeros(depth + 1)
        if not ((d0 >= 0) & (d0 < 1)).all():
            raise ValueError("discounts must lie in [0, 1)")
        theta0 = _per_depth(strength, depth)
        if not (theta0 > -d0).all():
            raise ValueError("strengths must exceed -discount")
        self.raw_discount = None
        if prior == "pitman_yor":
            self.raw_discount = nn.Parameter(torch.logit(d0.clamp(1e-4, 1 - 1e-4)))
            d0 = torch.sigmoid(self.raw_discount.detach())
        self.raw_strength = nn.Parameter(_inv_softplus(theta0 + d0))
        used = torch.ones(depth + 1, dtype=torch.bool)
        if prior == "ngram":
            order = depth if order is None else order
            if not 1 <= order <= depth:
                raise ValueError(f"ngram order must lie in [1, {depth}], got {order}")
            used[1:] = False
            used[order] = True
        self.register_buffer("used", used)  # in the state dict of saved models
        # The same as Python ints for the loop in prob_counts: reading a tensor element there would
        # wait for a GPU at every step.
        self.used_depths = tuple(k for k in range(depth + 1) if used[k])

    def discount(self) -> torch.Tensor:
        """d_k, shape (depth+1,)."""
        if self.raw_discount is None:
            return torch.zeros_like(self.raw_strength)
        return torch.sigmoid(self.raw_discount)

    def strength(self) -> torch.Tensor:
        """theta_k, shape (depth+1,)."""
        return functional.softplus(self.raw_strength) - self.discount()

    def prob_counts(self, counts: ChainCounts) -> torch.Tensor:
        """P(s|u) (m,) for each query of ``counts``, in the parameters' dtype and on their device,
        differentiable in d and theta."""
        dtype, device = self.raw_strength.dtype, self.raw_strength.device
        d, theta = self.discount(), self.strength()
        c_s, c_u, t_s, t_u = (
            torch.as_tensor(x, dtype=dtype, device=device) for x in (counts.c_s, counts.c_u, counts.t_s, counts.t_u)
        )
        p = torch.full((c_s.shape[1],), 1.0 / (counts.n_symbols + 1), dtype=dtype, device=device)
        for k in (k for k in self.used_depths if k <= counts.depth):
            seen = c_u[k] > 0
            # Unseen rows get a dummy total of 1 so that the masked branch has finite gradients.
            total = torch.where(seen, c_u[k], 1.0)
            p_k = (c_s[k] - d[k] * t_s[k] + (theta[k] + d[k] * t_u[k]) * p) / (theta[k] + total)
            p = torch.where(seen, p_k, p)
        return p

    def log_prob(self, tree: ContextTree, leave_one_out: bool = True) -> torch.Tensor:
        """log P(s_i | context_i) (n,) of every alert of ``tree``, optionally leave-one-out."""
        return torch.log(self.prob_counts(tree.chain_counts(leave_one_out)))

    def loss(self, data: ContextTree | ChainCounts) -> torch.Tensor:
        """Mean negative leave-one-out log-likelihood; pass ``tree.chain_counts()`` to reuse counts."""
        counts = data.chain_counts(True) if isinstance(data, ContextTree) else data
        return -torch.log(self.prob_counts(counts)).mean()

    @torch.no_grad()
    def surprise(self, tree: ContextTree) -> np.ndarray:
        """Temporal surprise -log P(s_i | context_i), leave-one-out, (n,) float64 nats."""
        return -self.log_prob(tree, leave_one_out=True).numpy().astype(np.float64)

    def prob(self, tree: ContextTree, history: np.ndarray, next_symbols: np.ndarray) -> torch.Tensor:
        """P(next_symbols[r] | history[r]) (m,) for histories (m, h) most recent first (-1 = none)."""
        return self.prob_counts(tree.query_counts(history, next_symbols))

    def predict(self, tree: ContextTree, context: Sequence[int]) -> torch.Tensor:
        """Predictive distribution (K+1,) after ``context`` (oldest first); last slot = unseen symbol."""
        slots = np.arange(tree.n_symbols + 1)
        history = np.asarray(context[::-1], dtype=np.int64).reshape(1, -1)
        return self.prob(tree, np.repeat(history, len(slots), axis=0), slots)

    def fit(self, tree: ContextTree, epochs: int = 100, lr: float = 0.1) -> list[float]:
        """Fit d and theta by Adam on `loss`; returns the loss per epoch."""
        counts = tree.chain_counts(True)
        optimizer = torch.optim.Adam(self.parameters(), lr=lr)
        losses = []
        for _ in range(epochs):
            optimizer.zero_grad()
            loss = self.loss(counts)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses

    def extra_repr(self) -> str:
        return f"depth={self.depth}, prior={self.prior!r}"

