"""Alerts as model inputs: integer codes, sequence order, the context tree and attribute tuples.

The temporal model sees episodes, not raw alerts: consecutive alerts of one entity with the
same type, each within ``run_gap`` seconds of the previous, form one run (a flood of 10,000 identical alerts is one step of a sequence, not
10,000 steps that make each other predictable). Runs carry the sequence, the tree and the
patterns; scores and occurrences are mapped back to every alert of a run.

`encode_alerts` turns the batch (and optional history) into arrays once; `AlertDataModule`
builds the context-tree counts and the distinct attribute tuples from them and serves the
joint training steps: each step is a slice of distinct tuples (content NCE) and a slice of
runs (temporal leave-one-out likelihood), so one epoch visits every tuple and run once.
Under DDP each process takes its own part of every slice (docs/scaling.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from car.alerts import AlertTable
from car.content.ape import unique_tuples
from car.errors import ConfigError
from car.temporal.context_tree import COUNT_ARRAYS, ChainCounts, ContextTree, run_starts, sequence_order


@dataclass
class EncodedAlerts:
    """History then batch alerts as arrays, sorted by (sequence, time), and their runs.

    Per alert (n,): codes (n, m) content attribute codes (entity, type, attributes);
    is_batch bool; batch_row, the row in the batch table (-1 for history); run_of, its run;
    alert_times, seconds.
    Per run (r,): symbols (type codes), sequence (entity codes), times (seconds of the
    first alert), run_is_batch (runs never mix history and batch alerts).
    vocab: the values behind the codes, one pandas Index per content column.
    """

    symbols: np.ndarray
    sequence: np.ndarray
    times: np.ndarray
    run_is_batch: np.ndarray
    run_of: np.ndarray
    codes: np.ndarray
    is_batch: np.ndarray
    batch_row: np.ndarray
    vocab: dict[str, pd.Index]
    alert_times: np.ndarray

    @property
    def n_symbols(self) -> int:
        """Number of alert types (the codes of ``vocab["type"]``)."""
        return len(self.vocab["type"])


def encode_alerts(batch: AlertTable, history: AlertTable | None = None, run_gap: float = float("inf")) -> EncodedAlerts:
    """Codes for history + batch alerts in (sequence, time) order; ``vocab`` keeps the values.

    run_gap: seconds; a same-type alert later than this after the previous one starts a new run.
    """
    parts = [history.alerts, batch.alerts] if history is not None else [batch.alerts]
    columns = ["entity", "type", *batch.attributes]
    frame = pd.concat([p[["time", *columns]] for p in parts], ignore_index=True)
    vocab, codes = {}, np.empty((len(frame), len(columns)), dtype=np.int64)
    for j, col in enumerate(columns):
        codes[:, j], vocab[col] = pd.factorize(frame[col], sort=True)
    times = frame["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9
    n_hist = len(frame) - len(batch)
    batch_row = np.concatenate([np.full(n_hist, -1), np.arange(len(batch))])
    return encode_codes(codes, times, batch_row, vocab, run_gap)


def encode_codes(codes: np.ndarray, times: np.ndarray, batch_row: np.ndarray, vocab: dict[str, pd.Index],
                 run_gap: float = float("inf")) -> EncodedAlerts:
    """Coded alerts put in (sequence, time) order and cut into runs.

    codes (n, m) int64, positions in ``vocab`` of (entity, type, attributes); times (n,) seconds;
    batch_row (n,) row in the batch table, -1 for history; run_gap as in `encode_alerts`.
    """
    order = sequence_order(codes[:, 0], times)
    codes, times, batch_row = codes[order], times[order], batch_row[order]
    is_batch = batch_row >= 0
    starts = run_starts(codes, times, is_batch, run_gap)
    return EncodedAlerts(
        symbols=codes[starts, 1], sequence=codes[starts, 0], times=times[starts], run_is_batch=is_batch[starts],
        run_of=np.cumsum(starts) - 1, codes=codes, is_batch=is_batch, batch_row=batch_row, vocab=vocab,
        alert_times=times,
    )


def entity_partitions(sequence: np.ndarray, partitions: int) -> list[np.ndarray]:
    """Row indices (each ascending) of the non-empty groups of entities, entity code modulo
    ``partitions``, as a hash partitioner would spread them; one group of all rows if none."""
    part = np.asarray(sequence) % partitions
    order = np.argsort(part, kind="stable")
    groups = np.split(order, np.cumsum(np.bincount(part, minlength=partitions))[:-1])
    return [rows for rows in groups if len(rows)] or [order]


def partitioned_tree(encoded: EncodedAlerts, depth: int, partitions: int = 1) -> ContextTree:
    """Context tree of the runs of ``encoded``, counted per partition of entities and merged, as
    a cluster counts; equal to one build over all runs (counts, node ids, per-run entries)."""
    parts = entity_partitions(encoded.sequence, partitions)
    trees = [ContextTree.build(encoded.symbols[rows], encoded.sequence[rows], depth, encoded.n_symbols)
             for rows in parts]
    merged = ContextTree.merge_all(trees)
    back = np.argsort(np.concatenate(parts))  # merged runs are in partition order
    return replace(merged, symbols=merged.symbols[back], pos=merged.pos[back], entry_of=merged.entry_of[back])


def shard(n: int, steps: int, gen: np.random.Generator, rank: int = 0, world: int = 1) -> list[np.ndarray]:
    """Indices of each of ``steps`` slices of a permutation of ``n`` items, part ``rank`` of ``world``."""
    return [np.array_split(part, world)[rank] for part in np.array_split(gen.permutation(n), steps)]


class _JointSteps(Dataset):
    """Step b: distinct tuples and run chain counts of slice b of fixed permutations, part
    ``rank`` of ``world``: the DDP processes of one optimizer step together see the whole slice."""

    def __init__(self, tuples: np.ndarray, counts: np.ndarray, chains: ChainCounts, steps: int, seed: int,
                 rank: int = 0, world: int = 1) -> None:
        gen = np.random.default_rng(seed)
        tuple_slices = shard(len(tuples), steps, gen, rank, world)
        run_slices = shard(chains.c_s.shape[1], steps, gen, rank, world)
        # Gathered once in step order, so that a step is a contiguous slice: gathering columns
        # step by step took a tenth of the fit on 1 M alerts.
        t, r = np.concatenate(tuple_slices), np.concatenate(run_slices)
        self.tuples, self.counts = tuples[t], counts[t]
        self.chains = {k: getattr(chains, k)[:, r] for k in COUNT_ARRAYS}
        self.tuple_bounds = np.cumsum([0] + [len(s) for s in tuple_slices])
        self.run_bounds = np.cumsum([0] + [len(s) for s in run_slices])
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, b: int) -> dict[str, torch.Tensor]:
        t = slice(self.tuple_bounds[b], self.tuple_bounds[b + 1])
        r = slice(self.run_bounds[b], self.run_bounds[b + 1])
        return {
            "tuples": torch.from_numpy(self.tuples[t]),
            "counts": torch.from_numpy(self.counts[t]),
            **{k: torch.from_numpy(np.ascontiguousarray(v[:, r])) for k, v in self.chains.items()},
        }


class AlertDataModule(L.LightningDataModule):
    """Context-tree counts and distinct tuples of encoded alerts, served as joint steps.

    partitions: groups of entities whose tree counts are built apart and merged (same tree).
    """

    def __init__(self, encoded: EncodedAlerts, depth: int, tuple_batch: int = 4096, seed: int = 0,
                 partitions: int = 1) -> None:
        super().__init__()
        self.encoded, self.tuple_batch, self.seed = encoded, tuple_batch, seed
        self.tree = partitioned_tree(encoded, depth, partitions)
        self.tuples, self.tuple_counts, self.tuple_of = unique_tuples(encoded.codes)

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch: distinct tuples / ``tuple_batch``, rounded up, at least 1."""
        return max(1, -(-len(self.tuples) // self.tuple_batch))

    def check_processes(self, world: int) -> None:
        """A ConfigError if one of ``world`` processes would get no tuples or no runs in a step.

        One process always gets tuples; a step without runs (fewer runs than steps, e.g. one long
        burst of alerts with many distinct attribute values) trains the content model alone."""
        if world == 1:
            return
        least, needed = min(len(self.tuples), len(self.tree.symbols)), self.steps_per_epoch * world
        if least < needed:
            raise ConfigError(
                f"trainer: {world} process(es) x {self.steps_per_epoch} steps per epoch need at least {needed} "
                f"distinct attribute tuples and runs, the data has {least}; use fewer processes (trainer=cpu) "
                "or a larger model.tuple_batch"
            )

    def train_dataloader(self) -> DataLoader:
        # Each DDP process takes its own part of every step (single process: rank 0 of 1, the whole step).
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        chains = self.tree.chain_counts(True)
        steps = _JointSteps(self.tuples, self.tuple_counts, chains, self.steps_per_epoch, self.seed, rank, world)
        return DataLoader(steps, batch_size=None, shuffle=False, num_workers=0)

    def predict_dataloader(self) -> DataLoader:
        # The ranking is one global solve: a single predict step over all alerts.
        return DataLoader([0], batch_size=None, num_workers=0)
