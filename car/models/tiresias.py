"""Tiresias (CCS 2018; PyTorch port on PyPI ``tiresias``) as a peer ranker, under benchmark.md's protocol.

Fit: the package's stochastic array-LSTM learns to predict each alert's type from the
``context`` previous alerts of the same entity in the history scenario (no labels).
Rank: score = 1 - P(type | previous alerts) in the batch. Types the history never had share
one code that the model never saw as a target, so their P is small (not 0: its softmax still
orders them by context, which reproduces benchmark.md's grouped numbers). Higher = less
expected = more likely an attack.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import lightning as L
import numpy as np
import torch

from car.alerts import AlertTable
from car.models.base import AlertRanker, Ranking
from car.models.peer_inputs import EventCodes, check_positive, import_peer, previous_events, require_history

SCORE_BATCH = 4096  # distinct contexts per forward pass when scoring (memory only, not results)


class TiresiasRanker(AlertRanker):
    """Tiresias trained on the history (``data.history``), scoring the batch by surprise.

    context: previous alerts of the same entity fed to the LSTM; timeout: seconds after which
    an earlier alert leaves the context. hidden: LSTM size; k: parallel memory cells.
    epochs, batch_size, lr: the package's SGD training. seed, threads: torch seed and threads.
    """

    name = "tiresias"

    def __init__(self, context: int = 20, timeout: float = float("inf"), hidden: int = 128, k: int = 4,
                 epochs: int = 1, batch_size: int = 128, lr: float = 0.01, seed: int = 0, threads: int = 1) -> None:
        check_positive(self.name, context=context, timeout=timeout, hidden=hidden, k=k, epochs=epochs,
                       batch_size=batch_size, lr=lr, threads=threads)
        self.context, self.timeout, self.hidden, self.k = context, timeout, hidden, k
        self.train_options = {"epochs": epochs, "batch_size": batch_size, "learning_rate": lr}
        self.seed, self.threads = seed, threads
        self.package = import_peer("tiresias", self.name)  # fails before any data is loaded
        self.codes: EventCodes | None = None
        self.model: torch.nn.Module | None = None

    def fit(self, alerts: AlertTable, history: AlertTable | None = None,
            trainer: dict[str, Any] | None = None) -> TiresiasRanker:
        """Train next-type prediction on ``history``; ``alerts`` are not used."""
        history = require_history(history, self.name)
        torch.set_num_threads(self.threads)
        L.seed_everything(self.seed, verbose=False)
        self.codes = EventCodes.of(history)
        contexts, events = previous_events(history, self.codes, self.context, self.timeout)
        self.model = self.package.Tiresias(input_size=self.codes.size, hidden_size=self.hidden,
                                           output_size=self.codes.size, k=self.k)
        # The package's training loop always draws a progress bar on stderr; without
        # trainer.enable_progress_bar it goes to a discarded stream instead.
        quiet = not (trainer or {}).get("enable_progress_bar", False)
        with contextlib.redirect_stderr(io.StringIO()) if quiet else contextlib.nullcontext():
            self.model.fit(contexts, events, **self.train_options)
        return self

    def rank(self, alerts: AlertTable) -> Ranking:
        """Score = 1 - P(type | previous alerts of the entity) for every alert of ``alerts``."""
        if self.model is None:
            raise RuntimeError("TiresiasRanker.rank called before fit")
        torch.set_num_threads(self.threads)
        contexts, events = previous_events(alerts, self.codes, self.context, self.timeout)
        return Ranking(scores=1.0 - self.probabilities(contexts, events))

    def probabilities(self, contexts: torch.Tensor, events: torch.Tensor) -> np.ndarray:
        """P(event | context) for each row, shape (n,), float64 (events and contexts as coded by ``codes``)."""
        distinct, inverse = torch.unique(contexts, dim=0, return_inverse=True)
        self.model.eval()
        with torch.no_grad():
            log_p = torch.cat([self.model(batch) for batch in distinct.split(SCORE_BATCH)])
        return log_p[inverse, events].exp().double().numpy()
