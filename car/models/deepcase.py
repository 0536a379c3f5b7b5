"""DeepCASE (IEEE S&P 2022, PyPI ``deepcase``) as a peer ranker, under the protocol of benchmark.md.

Fit: the context builder (attention over the ``context`` previous events of the same entity)
learns the history scenario; the interpreter clusters the history's attended contexts per
event type (DBSCAN) and gives each cluster a score from the history's labels (``strategy``
``max`` or ``avg`` of its events' 0/1 labels). Rank: every alert of the batch either matches
a cluster (its score, in [0, 1]) or is sent to manual review: context builder not confident
(``< confidence``), type unseen in the history, or no cluster within ``eps``. Review events
are ordered by the context builder's confidence in the alert's type, and placed by ``review``:
``first`` (the protocol: DeepCASE hands them to the analyst before anything else; score =
2 + confidence, clusters keep their score) or ``after_attacks`` (below the clusters scored
above 0: those get 2 + cluster score, review 1 + confidence, clusters scored 0 keep 0).
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import numpy as np
import torch

from car.alerts import AlertTable
from car.errors import ConfigError
from car.models.base import AlertRanker, Ranking
from car.models.peer_inputs import EventCodes, check_positive, import_peer, previous_events, require_history

STRATEGIES = ("max", "avg")
REVIEW_PLACES = ("first", "after_attacks")


class DeepCASERanker(AlertRanker):
    """DeepCASE trained on the labelled history (``data.history``), scoring the batch.

    labels: label kind of the history that scores the clusters (``strict`` = label_strict).
    strategy: cluster score from its events' labels, ``max`` or ``avg``. review: where manual
    review events rank, ``first`` or ``after_attacks`` (module docstring).
    context: previous events of the same entity; timeout: seconds after which an earlier
    event leaves the context. hidden, epochs, batch_size, lr: the context builder and its
    SGD training. eps, min_samples: DBSCAN; confidence: the interpreter's threshold;
    iterations: steps of its attention query. seed, threads: torch seed and threads.
    """

    name = "deepcase"
    learns_from_history_labels = True

    def __init__(self, labels: str = "strict", strategy: str = "max", review: str = "first", context: int = 10,
                 timeout: float = 86400.0, hidden: int = 128, epochs: int = 10, batch_size: int = 128,
                 lr: float = 0.01, eps: float = 0.1, min_samples: int = 5, confidence: float = 0.2,
                 iterations: int = 100, seed: int = 0, threads: int = 1) -> None:
        if strategy not in STRATEGIES:
            raise ConfigError(f"model.strategy={strategy!r} is not known; use {' or '.join(STRATEGIES)}")
        if review not in REVIEW_PLACES:
            raise ConfigError(f"model.review={review!r} is not known; use {' or '.join(REVIEW_PLACES)}")
        check_positive(self.name, context=context, timeout=timeout, hidden=hidden, epochs=epochs,
                       batch_size=batch_size, lr=lr, eps=eps, min_samples=min_samples, iterations=iterations,
                       threads=threads)
        self.labels, self.strategy, self.review, self.context, self.timeout = labels, strategy, review, context, timeout
        self.train_options = {"epochs": epochs, "batch_size": batch_size, "learning_rate": lr}
        self.cluster_options = {"eps": eps, "min_samples": min_samples, "threshold": confidence}
        self.hidden, self.iterations, self.seed, self.threads = hidden, iterations, seed, threads
        self.package = import_peer("deepcase", self.name)  # fails before any data is loaded
        logging.getLogger("deepcase").setLevel(logging.WARNING)  # it logs every batch at INFO
        self.codes: EventCodes | None = None
        self.model = None

    def fit(self, alerts: AlertTable, history: AlertTable | None = None,
            trainer: dict[str, Any] | None = None) -> DeepCASERanker:
        """Train on ``history`` with its ``label_<labels>`` column; ``alerts`` are not used."""
        history = require_history(history, self.name)
        scores = self._history_labels(history)
        torch.set_num_threads(self.threads)
        L.seed_everything(self.seed, verbose=False)
        self.codes = EventCodes.of(history)
        contexts, events = previous_events(history, self.codes, self.context, self.timeout)
        self.model = self.package.DeepCASE(features=self.codes.size, max_length=self.context, hidden_size=self.hidden,
                                           **self.cluster_options)
        self.model.fit(contexts, events.unsqueeze(1), scores, iterations=self.iterations, strategy=self.strategy,
                       verbose=bool((trainer or {}).get("enable_progress_bar", False)), **self.train_options)
        return self

    def _history_labels(self, history: AlertTable) -> np.ndarray:
        """The history's 0/1 labels of kind ``labels``, shape (n,), float64."""
        if self.labels not in history.label_kinds:
            have = ", ".join(history.label_kinds) or "none"
            raise ConfigError(f"model.labels={self.labels}: data.history {history.source} has no label_{self.labels} "
                              f"column (label kinds: {have}); set model.labels to one of them")
        return history.label(self.labels).astype(np.float64)

    def rank(self, alerts: AlertTable) -> Ranking:
        """Score every alert of ``alerts`` by its cluster or as manual review (module docstring)."""
        if self.model is None:
            raise RuntimeError("DeepCASERanker.rank called before fit")
        torch.set_num_threads(self.threads)
        contexts, events = previous_events(alerts, self.codes, self.context, self.timeout)
        events = events.unsqueeze(1)
        verdict = self.model.predict(contexts, events, iterations=self.iterations)
        confidence, _ = self.model.interpreter.attention_query(contexts, events, iterations=self.iterations)
        return Ranking(scores=self.scores_from(verdict, confidence.numpy().astype(np.float64)))

    def scores_from(self, verdict: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """Alert scores from DeepCASE's verdicts (cluster score, or a negative sentinel for
        manual review) and confidences, shapes (n,), as the module docstring says."""
        review = verdict < 0  # sentinels -1, -2, -3: not confident, type unseen, no cluster near
        if self.review == "first":
            return np.where(review, 2.0 + confidence, verdict)
        return np.where(review, 1.0 + confidence, np.where(verdict > 0, 2.0 + verdict, verdict))
