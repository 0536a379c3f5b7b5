"""The CAR LightningModule: owns every learned parameter, trains them jointly, ranks in predict.

fit:      loss = temporal leave-one-out NLL (Pitman-Yor discounts and strengths)
                 + content_weight * NCE loss (APE entity embeddings and pair weights)
predict:  type rarity, value surprise, entity and address context -> prior q (car/ranking/prior.py);
          temporal surprise, content anomaly -> output columns; pattern search -> p and F;
          embedding neighbours -> Sim (edge-preserving on the value surprise and the type
          rarity, normalised across tuples); collaborative solve -> alert scores t, pattern scores u.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, NamedTuple

import lightning as L
import numpy as np
import torch

from car.content.ape import EntityEmbedding
from car.content.similarity import edge_preserving, knn_similarity, normalise_degrees, scale_by_tuple_size
from car.data.datamodule import AlertDataModule, EncodedAlerts
from car.ranking.collaborative import RankingParams, build_graph, collaborative_rank
from car.ranking.prior import address_columns, address_context, alert_prior, burst_starts, entity_context, percentile
from car.temporal.context_tree import COUNT_ARRAYS, ChainCounts
from car.temporal.patterns import Occurrences, Pattern, concatenated_ranges, find_patterns, pattern_occurrences
from car.temporal.pitman_yor import PitmanYorTree

# Lightning installs its own console handlers; under Hydra every line would print twice.
# Route its records to the root logger (Hydra's console and file handlers) only.
for _name in ("lightning", "lightning.pytorch", "lightning.fabric"):
    logging.getLogger(_name).handlers.clear()
    logging.getLogger(_name).propagate = True
# Lightning advertises its cloud add-ons at every fit and predict ("💡 Tip: ... litlogger"); not for our logs.
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda record: "Tip:" not in record.getMessage())

# Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates; nothing for users to act on.
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
# Lightning warns when an epoch has fewer steps than log_every_n_steps, but it counts the steps
# across epochs: a fit of 30 one-step epochs still logs every 5th step (tests/test_train_run.py).
warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")

SCORES = ("collaborative", "temporal", "content")
# With history, patterns are searched over history and batch: this many times model.patterns.max_patterns
# candidates, of which the best max_patterns with min_support occurrences among the batch alerts are kept
# (3x left 28 of 100 on fox with shaw as history; 10x fills all 100 on the five AIT-ADS scenarios).
HISTORY_POOL = 10
LIFT_SETS = 100  # most active sets of ranking.agreement=lift (3-4 on the simulator and AIT-ADS)

log = logging.getLogger(__name__)


class PriorParts(NamedTuple):
    """The prior of the batch alerts and its parts, each (n_batch,), in encoded order.

    prior: before rank normalisation (nats, or percentiles with ``rarity_from: both``); unusual:
    the attribute (index among the attributes) whose value is the most unusual for the alert's
    type, -1 where none stands out; lifted: bool, the entity context adds more than the alert's
    own terms; linked: the attribute whose shared rare address adds more than the rest of the
    prior, -1 where none does; surprise: the value surprise (nats); rarity: the type rarity (nats),
    the prior's first part before the value surprise and the contexts. Both are counted over
    ``ranking.rarity_from``'s alerts, over all alerts with ``both``.
    """

    prior: np.ndarray
    unusual: np.ndarray
    lifted: np.ndarray
    linked: np.ndarray
    surprise: np.ndarray
    rarity: np.ndarray


class RankedAlerts:
    """What predict returns, over the batch alerts in encoded (sequence, time) order.

    scores, temporal, content, prior (before rank normalisation): (n_batch,); patterns: found patterns;
    pattern_scores (L,); occurrences: of the patterns in the batch (alert indices into the
    batch arrays); next_steps: per pattern, the likeliest next types (symbol, probability)
    after its latest occurrence; type_bursts: (n_symbols,) bursts per type over all alerts, or
    None when type rarity counts alerts (``ranking.burst_gap`` null); unusual, lifted, linked:
    (n_batch,) as in `PriorParts`. A plain class on purpose:
    Lightning would try to move a dataclass's fields to a device.
    """

    def __init__(self, scores: np.ndarray, temporal: np.ndarray, content: np.ndarray, prior: np.ndarray,
                 patterns: list[Pattern], pattern_scores: np.ndarray, occurrences: Occurrences,
                 next_steps: list[list[tuple[int, float]]], type_bursts: np.ndarray | None,
                 unusual: np.ndarray, lifted: np.ndarray, linked: np.ndarray) -> None:
        self.scores, self.temporal, self.content, self.prior = scores, temporal, content, prior
        self.patterns, self.pattern_scores, self.occurrences = patterns, pattern_scores, occurrences
        self.next_steps, self.type_bursts = next_steps, type_bursts
        self.unusual, self.lifted, self.linked = unusual, lifted, linked


class CARModule(L.LightningModule):
    """Pitman-Yor tree + APE embeddings, trained jointly; collaborative ranking in predict."""

    def __init__(
        self,
        n_symbols: int,
        cardinalities: list[int],
        temporal: dict[str, Any],
        content: dict[str, Any],
        patterns: dict[str, Any],
        ranking: dict[str, Any],
        lr: float = 0.05,
        score: str = "collaborative",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"model.score={score!r}: use one of {', '.join(SCORES)}")
        self.save_hyperparameters(logger=False)
        self.temporal = PitmanYorTree(
            temporal["depth"], prior=temporal["prior"], order=temporal.get("order"),
        )
        self.content = (
            EntityEmbedding(cardinalities, dim=content["dim"], k=content["noise_samples"], seed=seed)
            if content["enabled"] else None
        )
        # The NCE noise stream, made per process in setup: a Generator cannot be sent to ddp_spawn processes.
        self.noise: torch.Generator | None = None
        self.log_every = 1  # the Trainer's log_every_n_steps, read when a fit starts
        # torch's thread count of the fit (the run's ``threads``), set by CAR.fit and applied in
        # setup: a ddp_spawn process starts with Lightning's own choice (cores / processes) instead.
        self.threads: int | None = None

    def set_noise(self, tuples: np.ndarray, counts: np.ndarray) -> None:
        """NCE noise distributions from the training tuples (unigram^0.75 per attribute)."""
        if self.content is not None:
            self.content.set_noise(tuples, counts)

    def setup(self, stage: str) -> None:
        # Each DDP process draws its own NCE noise; rank 0 (and a single process) keeps the seed's
        # stream. A resumed fit then restores the saved stream (on_load_checkpoint runs after setup).
        if stage == "fit":
            self.noise = torch.Generator().manual_seed(self.hparams.seed + self.global_rank)
            if self.threads is not None:
                torch.set_num_threads(self.threads)

    def on_fit_start(self) -> None:
        self.log_every = self.trainer.log_every_n_steps

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        # Tensors only, on the batch's device: the same step runs on CPU, GPU and DDP processes.
        chains = ChainCounts(self.hparams.n_symbols, *(batch[k] for k in COUNT_ARRAYS))
        # A step without runs (one process, fewer runs than steps: AlertDataModule.check_processes)
        # has no temporal term; the mean over no runs would be NaN and spoil every parameter.
        temporal = self.temporal.loss(chains) if chains.c_s.shape[1] else self.temporal.raw_strength.new_zeros(())
        loss, metrics = temporal, {"train/temporal_nll": temporal}
        if self.content is not None:
            nce = self.content.nce_loss(batch["tuples"], batch["counts"], generator=self.noise)
            loss = loss + self.hparams.content["weight"] * nce
            metrics["train/nce"] = nce
        # The Trainer writes metrics every log_every_n_steps steps (the condition below is Lightning's);
        # self.log costs about 0.4 ms a metric, a tenth of a step on 10,000 alerts: the other steps skip it.
        if self.log_every > 0 and (self.global_step + 1) % self.log_every == 0:
            self.log_dict(metrics, prog_bar=True)
            self.log("train/loss", loss)
        return loss

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The NCE noise stream is part of the training state: a resumed fit continues it.
        checkpoint["nce_noise_state"] = self.noise.get_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.noise = torch.Generator()
        self.noise.set_state(checkpoint["nce_noise_state"])
        finish_saved_epoch(checkpoint.get("loops", {}).get("fit_loop", {}))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # fused: one pass over each parameter per step; on the embedding table of 1 M alerts over
        # 100,000 hosts (about 400 k rows) 11 ms a step against 62 ms for the per-op update.
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, fused=True)

    def predict_step(self, batch: Any, batch_idx: int = 0) -> RankedAlerts:
        return self.rank_alerts(self.trainer.datamodule)

    @torch.no_grad()
    def rank_alerts(self, data: AlertDataModule) -> RankedAlerts:
        """Score the batch alerts of ``data`` (history only informs the models)."""
        enc, batch = data.encoded, data.encoded.is_batch
        alert_run = enc.run_of[batch]
        temporal = self.temporal.surprise(data.tree)[alert_run]
        gap = self.hparams.ranking["burst_gap"]
        # Encoded alerts are in (entity, time) order already: no sort for the prior's counts.
        counted = np.ones(len(enc.codes), dtype=bool) if gap is None else burst_starts(
            enc.codes[:, 0], enc.codes[:, 1], enc.alert_times, gap, enc.is_batch, np.arange(len(enc.codes)))
        parts = self._prior(enc)
        type_bursts = None if gap is None else np.bincount(enc.codes[counted, 1], minlength=enc.n_symbols)
        tuple_of = data.tuple_of[batch]
        content = self.content.anomaly(data.tuples)[tuple_of] if self.content is not None else np.zeros(len(temporal))
        found, run_occ = self._patterns(data)
        runs = enc.run_is_batch
        occ = runs_to_alerts(run_occ, np.cumsum(runs)[alert_run] - 1)
        next_steps = self._next_steps(data, np.flatnonzero(runs), run_occ)
        if self.hparams.score == "collaborative":
            scores, pattern_scores = self._solve(data, tuple_of, parts, content, found, occ)
        else:
            scores = temporal if self.hparams.score == "temporal" else content
            pattern_scores = np.array([pat.dependency for pat in found], dtype=np.float64)
        return RankedAlerts(scores, temporal, content, parts.prior, found, pattern_scores, occ, next_steps, type_bursts,
                            parts.unusual, parts.lifted, parts.linked)

    def _patterns(self, data: AlertDataModule) -> tuple[list[Pattern], Occurrences]:
        """The batch's patterns, searched over all alerts of ``data``, and their occurrences over
        the batch's runs. With history, the best ``max_patterns`` of ``HISTORY_POOL`` times as many
        candidates that have ``min_support`` occurrences among the batch's own alerts: the search
        counts support over history and batch."""
        cfg, enc = self.hparams.patterns, data.encoded
        history = not enc.is_batch.all()
        window, runs = float(cfg["window"]), enc.run_is_batch
        found = find_patterns(
            data.tree, self.temporal, k_max=cfg["k_max"], min_support=cfg["min_support"],
            min_lift=cfg["min_lift"], max_patterns=cfg["max_patterns"] * (HISTORY_POOL if history else 1),
            score=cfg["score"], rarity_weight=cfg["rarity_weight"], max_gap=cfg["max_gap"], times=enc.times,
            window=window, baseline=cfg["baseline"],
        )

        run_occ = pattern_occurrences(found, enc.symbols[runs], enc.sequence[runs], enc.times[runs],
                                      window=window, max_gap=cfg["max_gap"])
        if history:
            keep = np.flatnonzero(run_occ.count >= cfg["min_support"])[:cfg["max_patterns"]]
            found, run_occ = [found[i] for i in keep], run_occ.subset(keep)
        return found, run_occ

    def _prior(self, enc: EncodedAlerts) -> PriorParts:
        """The prior of the batch alerts before rank normalisation and its parts (`PriorParts`,
        car/ranking/prior.py). Type rarity and value surprise are counted over
        ``ranking.rarity_from``: the ``batch`` only (the history informs
        the sequence and content models, not the prior), the ``history`` only (novelty: types
        unseen before rank first), ``all`` alerts, or ``both`` (the mean of the rank-normalised
        priors over all alerts and in the history); without history all four are the same. Then
        the entity context (``ranking.context_window``) and the address context
        (``ranking.address_window``) over the batch."""
        cfg, batch = self.hparams.ranking, enc.is_batch
        at = np.flatnonzero(batch)

        def counted_over(source: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return alert_prior(enc.codes[:, 0], enc.codes[:, 1], enc.codes[:, 2:], enc.alert_times, source, at,
                               enc.n_symbols, cfg["burst_gap"], cfg["value_surprise"], np.arange(len(batch)))

        source = "all" if batch.all() else cfg["rarity_from"]
        if source in ("batch", "history"):
            prior, unusual, surprise = counted_over(batch if source == "batch" else ~batch)
        else:
            prior, unusual, surprise = counted_over(np.ones(len(batch), dtype=bool))
        rarity = prior - surprise
        if source == "both":
            prior = (percentile(prior) + percentile(counted_over(~batch)[0])) / 2
        context = np.zeros(len(at))
        if cfg["context_window"] is not None:
            context = cfg["context_weight"] * entity_context(
                enc.codes[at, 0], enc.alert_times[at], prior, float(cfg["context_window"]), np.arange(len(at)))
        lifted = context > prior
        prior = prior + context
        linked, column = self._address_context(enc, at, prior)
        return PriorParts(prior + linked, unusual, lifted, column, surprise, rarity)

    def _address_context(self, enc: EncodedAlerts, at: np.ndarray,
                         prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``ranking.address_weight`` x the address context of the alerts ``at`` (n_batch,), from
        their ``prior`` (car/ranking/prior.py), and the attribute (index among the attributes)
        whose address adds more than ``prior`` itself, else -1. Zeros where the option is off or
        no attribute holds addresses."""
        cfg, attributes = self.hparams.ranking, list(enc.vocab)[2:]
        none = np.zeros(len(at)), np.full(len(at), -1)
        if cfg["address_window"] is None:
            return none
        columns = [attributes.index(name) for name in address_columns({a: enc.vocab[a] for a in attributes})]
        if not columns:
            return none
        linked, column = address_context(enc.codes[at, 0], enc.codes[np.ix_(at, np.add(columns, 2))],
                                         enc.alert_times[at], prior, float(cfg["address_window"]))
        linked *= cfg["address_weight"]
        return linked, np.where((column >= 0) & (linked > prior), np.asarray(columns)[column], -1)

    def _next_steps(self, data: AlertDataModule, batch_runs: np.ndarray, run_occ: Occurrences,
                    top: int = 3) -> list[list[tuple[int, float]]]:
        """Per pattern, the ``top`` likeliest next types after the context that ends its latest
        occurrence (the tree's predictive distribution; the unseen slot is left out)."""
        tree, depth = data.tree, self.temporal.depth
        out = []
        for pattern in range(len(run_occ.count)):
            last = run_occ.occ_last[run_occ.occ_pattern == pattern]
            if not len(last):
                out.append([])
                continue
            ends = batch_runs[last]
            end = ends[np.argmax(data.encoded.times[ends])]
            start = max(end - depth + 1, end - tree.pos[end])
            probs = self.temporal.predict(tree, tree.symbols[start:end + 1].tolist())[:-1].numpy()
            best = np.argsort(-probs, kind="stable")[:top]
            out.append([(int(s), float(probs[s])) for s in best])
        return out

    def _solve(self, data: AlertDataModule, tuple_of: np.ndarray, parts: PriorParts,
               content: np.ndarray, found: list[Pattern], occ: Occurrences) -> tuple[np.ndarray, np.ndarray]:
        cfg, prior = self.hparams.ranking, parts.prior
        n = len(prior)
        sim, pull = (None, None, None), 0.0
        if self.content is not None and cfg["beta"] > 0:
            sim = knn_similarity(self.content, data.tuples, tuple_of, k=cfg["neighbours"])
            for signal, bandwidth in ((parts.surprise, cfg["surprise_bandwidth"]), (parts.rarity, cfg["rarity_bandwidth"])):
                if bandwidth is not None:
                    sim = edge_preserving(sim, signal, float(bandwidth))
            if cfg["normalise_similarity"]:
                sim = normalise_degrees(sim, tuple_of)
            pull = float(cfg["tuple_pull"])
            sim = scale_by_tuple_size(sim, tuple_of, pull)
        graph = build_graph(n, len(found), occ.alert_idx, occ.pattern_idx, *sim, symmetric=pull == 0)
        p = np.array([pat.dependency for pat in found], dtype=np.float64)
        if cfg["size_weighted"]:
            # -p.u rewards a pattern once; weighting by its alerts makes the bonus an alert
            # gets from its pattern independent of how many alerts share it.
            p = p * np.bincount(occ.pattern_idx, minlength=len(found))
        q = prior_scores(prior, content if self.content is not None else None, cfg["content_prior"]) if cfg["prior"] else None
        params = RankingParams(
            alpha=cfg["alpha"], beta=cfg["beta"] if sim[0] is not None else 0.0,
            gamma=cfg["gamma"], lam=cfg["lam"], normalized=cfg["normalized"], agreement=cfg["agreement"],
        )
        # A relative residual of 1e-6 moves scores by < 1e-5 and AP not at all (300 k simulated
        # alerts), in half the conjugate-gradient steps of the solver's default 1e-10.
        result = collaborative_rank(graph, p, q, params, cg_tol=1e-6, max_iter=LIFT_SETS)
        if not result.converged:
            log.warning("ranking: the solve did not converge (%d iterations, %d Krylov steps); "
                        "ranked with its last scores", result.iterations, result.cg_iterations)
        return result.t.numpy(), result.u.numpy()


def finish_saved_epoch(fit_loop: dict[str, Any]) -> None:
    """Lightning's loop state of a checkpoint written at an epoch's end, changed so that the resumed
    fit starts the next epoch, as an uninterrupted fit does. With ``trainer.max_steps`` set (the
    default) Lightning re-entered the saved epoch instead: one extra step on the epoch's first
    slice, then one epoch less, so the fit ended on other parameters. Loads before the loops."""
    epochs, batches = fit_loop.get("epoch_progress"), fit_loop.get("epoch_loop.batch_progress")
    if not (isinstance(epochs, dict) and isinstance(batches, dict) and batches.get("is_last_batch")):
        return
    total = epochs["total"]
    if total["ready"] == total["started"] == total["processed"] == total["completed"] + 1:
        for part in ("total", "current"):
            epochs[part]["completed"] = epochs[part]["processed"]
        batches["current"] = dict.fromkeys(batches["current"], 0)
        batches["is_last_batch"] = False


def runs_to_alerts(occ: Occurrences, alert_run: np.ndarray) -> Occurrences:
    """Occurrences over runs to occurrences over alerts: a run in an occurrence brings all its
    alerts. ``alert_run`` (n,) non-decreasing run index of each alert."""
    start = np.searchsorted(alert_run, np.arange(alert_run.max(initial=-1) + 2))
    run_length = np.diff(start)
    length = run_length[occ.alert_idx]
    alerts = concatenated_ranges(start[occ.alert_idx], start[occ.alert_idx + 1])
    size = np.bincount(np.repeat(np.arange(len(occ.occ_size)), occ.occ_size), weights=run_length[occ.occ_steps],
                       minlength=len(occ.occ_size)).astype(np.int64)
    return Occurrences(
        alert_idx=alerts, pattern_idx=np.repeat(occ.pattern_idx, length), occ_pattern=occ.occ_pattern,
        count=occ.count,
        occ_steps=concatenated_ranges(start[occ.occ_steps], start[occ.occ_steps + 1]), occ_size=size,
    )


def prior_scores(prior: np.ndarray, content: np.ndarray | None, content_weight: float) -> np.ndarray:
    """Per-alert prior q in [0, 1]: the rank-normalised prior, mixed with content anomaly."""
    q = percentile(prior)
    if content is not None and content_weight > 0:
        q = (q + content_weight * percentile(content)) / (1 + content_weight)
    return q
