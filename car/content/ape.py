"""APE entity embeddings for categorical alert tuples, trained by noise-contrastive estimation.

An alert's content is a tuple of m attribute codes, column j in ``[0, V_j)``. Every value
of every attribute (an entity) has a ``dim``-vector; a tuple's compatibility is
``S(e) = sum_{i<j} w_ij <v_{e_i}, v_{e_j}>`` with non-negative pair weights ``w_ij``.

Unknown values: each attribute reserves index ``V_j`` (its cardinality) for values not seen
when the vocabulary was built. Callers encode unseen values as any out-of-range code
(e.g. ``-1``) and pass the matrix through :meth:`EntityEmbedding.map_unknown`. Unknown
vectors are masked to zero and never trained (noise never draws them; training tuples must
hold known codes only), so each pair with an unknown value contributes 0 to ``S(e)``, and
its cosine similarity to anything counts as 0.

Count weighting: the data term of each distinct tuple is weighted by ``count ** count_power``
(default 0.5), normalised over the batch. ``1`` mimics training on the raw alert stream but
lets a few huge tuples swamp the rest; ``0`` treats every distinct tuple alike. On
CIC-IDS2017 (test ROC-AUC, seed 0, fit_ape defaults) 0.5 gave 0.946, 0 gave 0.803, 1 gave 0.725.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = torch.Tensor | np.ndarray
# Tuples per batch where all tuples' vectors are needed at once (scores, similarity): a (4096, m, dim)
# block stays in a core's cache (2 MB L2 here), where one of 65,536 tuples (40 MB) does not.
CACHE_BATCH = 4096


def unique_tuples(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of ``codes`` (n, m): ``tuples`` (u, m), ``counts`` (u,), ``inverse`` (n,).

    ``tuples[inverse]`` equals ``codes``; tuples are sorted lexicographically.
    Non-negative codes take a 1-D path: columns are folded left to right into one int64 key
    (mixed radix, in the rows' lexicographic order), and where the next column would overflow
    the key, the key is first replaced by its rank among the distinct prefixes.
    ``np.unique(axis=0)`` sorts a void view: it took 6 s of the 10 s fit on 473k alerts, and
    2.5 s on 1 M alerts over 100,000 hosts, whose attribute radices overflow int64 together.
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim == 2 and codes.size and codes.min() >= 0:
        key = codes[:, 0].copy()
        for column in codes.T[1:]:
            radix = int(column.max()) + 1
            if (int(key.max()) + 1) * radix >= 2**63:
                key = np.unique(key, return_inverse=True)[1].reshape(-1)
            key = key * radix + column
        _, first, inverse, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
        return codes[first], counts.astype(np.int64), inverse.reshape(-1).astype(np.int64)
    tuples, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return tuples, counts.astype(np.int64), inverse.reshape(-1).astype(np.int64)


class EntityEmbedding(torch.nn.Module):
    """The APE model: entity embeddings, pair weights, bias and NCE noise distributions.

    ``cardinalities[j]`` = number of known values of attribute j; the table has one extra
    (unknown) row per attribute. The noise distribution is uniform over known values until
    :meth:`set_noise` is called with the training tuples (:meth:`from_tuples` does it).
    """

    def __init__(
        self,
        cardinalities: Sequence[int],
        dim: int = 16,
        k: int = 5,
        count_power: float = 0.5,
        seed: int = 0,
    ) -> None:
        super().__init__()
        sizes = torch.as_tensor(list(cardinalities), dtype=torch.int64) + 1
        total = int(sizes.sum())
        self.m, self.k, self.count_power = len(sizes), k, count_power
        self.register_buffer("cardinalities", sizes - 1)
        self.register_buffer("offsets", torch.cumsum(sizes, 0) - sizes)
        known = torch.ones(total, 1)
        known[self.offsets + self.cardinalities] = 0.0
        self.register_buffer("known", known)
        self.register_buffer("pairs", torch.triu_indices(self.m, self.m, 1))
        gen = torch.Generator().manual_seed(seed)
        init = torch.randn(total, dim, generator=gen) / dim**0.5
        self.embedding = torch.nn.Embedding(total, dim, _weight=init)
        # softplus(0.5413) = 1: every pair starts with weight 1.
        self.raw_pair_weight = torch.nn.Parameter(torch.full((self.pairs.shape[1],), 0.5413))
        self.bias = torch.nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_cdf", torch.zeros(total, dtype=torch.float64))
        self.register_buffer("noise_log_prob", torch.zeros(total))
        self._set_noise_probs([torch.ones(int(v)) for v in self.cardinalities])

    @classmethod
    def from_tuples(
        cls, tuples: np.ndarray, counts: np.ndarray, cardinalities: Sequence[int] | None = None, **kwargs: Any
    ) -> EntityEmbedding:
        """Model sized by ``cardinalities`` (default: column max + 1) with noise from the data;
        ``kwargs`` go to the constructor (dim, k, count_power, seed)."""
        if cardinalities is None:
            cardinalities = (np.asarray(tuples).max(axis=0) + 1).tolist()
        model = cls(cardinalities, **kwargs)
        model.set_noise(tuples, counts)
        return model

    @property
    def pair_weights(self) -> torch.Tensor:
        """Non-negative pair weights w_ij, shape (m(m-1)/2,), in ``triu_indices`` order."""
        return F.softplus(self.raw_pair_weight)

    def pair_weight_matrix(self) -> torch.Tensor:
        """Symmetric (m, m) matrix of w_ij with zero diagonal."""
        w = torch.zeros(self.m, self.m, device=self.raw_pair_weight.device)
        w[self.pairs[0], self.pairs[1]] = self.pair_weights
        return w + w.T

    def set_noise(self, tuples: ArrayLike, counts: ArrayLike, power: float = 0.75) -> None:
        """Noise distributions: per-attribute unigram (count-weighted) raised to ``power``."""
        tuples = torch.as_tensor(tuples, dtype=torch.int64)
        counts = torch.tensor(np.asarray(counts), dtype=torch.float64)
        probs = []
        for j, v in enumerate(self.cardinalities.tolist()):
            freq = torch.zeros(v, dtype=torch.float64).index_add_(0, tuples[:, j], counts)
            probs.append(freq**power)
        self._set_noise_probs(probs)

    def _set_noise_probs(self, weights: list[torch.Tensor]) -> None:
        """Store flat CDFs shifted by attribute index (j + cdf_j), so one searchsorted samples all."""
        cdfs, logs = [], []
        for j, w in enumerate(weights):
            p = torch.cat([w.double() / w.sum(), torch.zeros(1, dtype=torch.float64)])
            cdf = torch.cumsum(p, 0)
            cdf[-1] = 1.0
            cdfs.append(j + cdf)
            logs.append(torch.log(p).float())
        self.noise_cdf.copy_(torch.cat(cdfs))
        self.noise_log_prob.copy_(torch.cat(logs))

    def map_unknown(self, codes: ArrayLike) -> torch.Tensor:
        """Codes (b, m) with every value outside ``[0, V_j)`` replaced by the unknown index V_j."""
        codes = torch.as_tensor(codes, dtype=torch.int64, device=self.offsets.device)
        card = self.cardinalities.expand_as(codes)
        return torch.where((codes < 0) | (codes >= card), card, codes)

    def vectors(self, tuples: ArrayLike) -> torch.Tensor:
        """Entity vectors of tuples (b, m) -> (b, m, dim); a code outside ``[0, V_j)`` gets the
        zero unknown vector (values first seen after the table was built, e.g. by online ranking)."""
        flat = self.map_unknown(tuples) + self.offsets
        return self.embedding(flat) * self.known[flat]

    def compatibility(self, tuples: ArrayLike) -> torch.Tensor:
        """S(e) = sum_{i<j} w_ij <v_i, v_j> for tuples (b, m) -> (b,)."""
        e = self.vectors(tuples)
        return self._compatibility_and_context(e.transpose(0, 1).reshape(-1, e.shape[-1]))[0]

    def _compatibility_and_context(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """S (b,) and contexts g_a = sum_j w_aj v_j (m, b, dim) of entity vectors e (m * b, dim)
        in attribute-major order (all tuples' first attribute, then their second, ...).

        In that order the pair weights act on every tuple by one (m, m) x (m, b * dim) product,
        with no permuted copies: an NCE step on 10,000 simulated alerts takes 9.7 ms against 11.6 ms
        with (b, m, dim) and an einsum (medians of eight interleaved runs of 60 steps).
        """
        e = e.view(self.m, -1)
        g = (self.pair_weight_matrix() @ e).view(self.m, -1, self.embedding.embedding_dim)
        return 0.5 * (e.view_as(g) * g).sum((0, 2)), g

    def sample_noise(
        self, tuples: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per tuple (b, m): a uniform attribute ``attr`` (b,) and k noise values for it (b, k).

        Noise values are flat table indices (code + offset of ``attr``) drawn from that
        attribute's noise distribution by inverse CDF.
        """
        b = tuples.shape[0]
        attr = torch.randint(self.m, (b,), generator=generator).to(tuples.device)
        u = torch.rand(b, self.k, generator=generator, dtype=torch.float64).to(tuples.device)
        flat = torch.searchsorted(self.noise_cdf, attr.unsqueeze(1) + u, right=True)
        return attr, torch.minimum(flat, (self.offsets + self.cardinalities - 1)[attr].unsqueeze(1))

    def nce_loss(
        self, tuples: ArrayLike, counts: ArrayLike, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Count-weighted NCE loss of a batch of distinct tuples (b, m) with counts (b,).

        Per tuple one attribute a is drawn uniformly; its k noise copies replace e_a by a
        draw from attribute a's noise distribution. Logit = S + c - log(k P_noise(value of
        a)) for the tuple and its noises; binary cross entropy, data label 1, noise 0.
        A noise copy differs in attribute a only, so S(noise) = S(e) + <v'_a - v_a, g_a>.
        """
        tuples = torch.as_tensor(tuples, dtype=torch.int64, device=self.offsets.device)
        rows = torch.arange(tuples.shape[0], device=tuples.device)
        attr, noise_flat = self.sample_noise(tuples, generator)
        flat = tuples + self.offsets
        data_flat = flat[rows, attr]

        # Training tuples and noise hold known values only, so the unknown mask of `vectors` (a
        # multiply and its backward per lookup, a fifth of the step) is not needed here. On CPU,
        # index_select's backward (an index_add) takes half the time of nn.Embedding's.
        b, table = len(rows), self.embedding.weight
        s, g = self._compatibility_and_context(table.index_select(0, flat.T.reshape(-1)))
        v_a, g_a = table.index_select(0, data_flat), g[attr, rows]
        noise_v = table.index_select(0, noise_flat.view(-1)).view(b, self.k, -1)
        noise_s = (s - (v_a * g_a).sum(-1)).unsqueeze(1) + (noise_v * g_a.unsqueeze(1)).sum(-1)

        shift = self.bias - float(np.log(self.k))
        data_logit = s + shift - self.noise_log_prob[data_flat]
        noise_logit = noise_s + shift - self.noise_log_prob[noise_flat]
        per_tuple = F.softplus(-data_logit) + F.softplus(noise_logit).sum(1)
        w = torch.as_tensor(counts, dtype=torch.float32, device=tuples.device) ** self.count_power
        return (w * per_tuple).sum() / w.sum()

    @torch.no_grad()
    def anomaly(self, tuples: ArrayLike, batch_size: int = CACHE_BATCH) -> np.ndarray:
        """Content anomaly -S(e) of tuples (b, m) -> float64 (b,); higher = more anomalous.

        In cache-sized batches: 0.036 s against 0.11 s for the 59,669 tuples of 100,000 simulated
        alerts in batches of 65,536 (same scores)."""
        tuples = torch.as_tensor(tuples, dtype=torch.int64)
        parts = [self.compatibility(chunk) for chunk in tuples.split(batch_size)]
        # 0 - S, not -S: a compatibility of 0 (values never seen) is 0, not -0 in the CSV.
        return 0.0 - torch.cat(parts).double().cpu().numpy() if parts else np.zeros(0)


def fit_ape(
    model: EntityEmbedding,
    tuples: np.ndarray,
    counts: np.ndarray,
    epochs: int = 20,
    lr: float = 0.03,
    batch_size: int = 2048,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` in place with Adam on shuffled minibatches; return the mean loss per epoch.

    Call ``model.set_noise`` (or build with :meth:`EntityEmbedding.from_tuples`) first.
    """
    tuples_t = torch.tensor(np.asarray(tuples), dtype=torch.int64)
    counts_t = torch.tensor(np.asarray(counts), dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        order = torch.randperm(len(tuples_t), generator=gen)
        total = 0.0
        for idx in order.split(batch_size):
            loss = model.nce_loss(tuples_t[idx], counts_t[idx], gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append(total / len(tuples_t))
    return history
