"""Alerts as model inputs: integer codes, sequence order, the context tree and attribute tuples.

The temporal model sees episodes, not raw alerts: consecutive alerts of one entity with the
same type, each within ``run_gap`` seconds of the previous, form one run (a flood of 10,000 identical alerts is one step of a sequence, not
10,000 steps that make each other predictable). Runs carry the sequence, the tree and the
patterns; scores and occurrences are mapped back to every alert of a run.

`encode_alerts` turns the batch (and optional history) into arrays once; `AlertDataModule`
builds the context-tree counts and the distinct attribute tuples from them and serves the
joint training steps: each step is a slice of distinct tuples (content NCE) and a slice of
alerts (temporal leave-one-out likelihood), so one epoch visits every tuple and alert once.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from car.alerts import AlertTable
from car.content.ape import unique_tuples
from car.temporal.context_tree import ChainCounts, ContextTree, sequence_order


@dataclass
class EncodedAlerts:
    """History then batch alerts as arrays, sorted by (sequence, time), and their runs.

    Per alert (n,): codes (n, m) content attribute codes (entity, type, attributes);
    is_batch bool; batch_row, the row in the batch table (-1 for history); run_of, its run.
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

    @property
    def n_symbols(self) -> int:
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
    order = sequence_order(codes[:, 0], times)
    codes, times, batch_row = codes[order], times[order], batch_row[order]
    is_batch = batch_row >= 0
    starts = np.ones(len(codes), dtype=bool)
    starts[1:] = (
        (np.diff(codes[:, 0]) != 0) | (np.diff(codes[:, 1]) != 0) | (is_batch[1:] != is_batch[:-1])
        | (np.diff(times) > run_gap)
    )
    return EncodedAlerts(
        symbols=codes[starts, 1], sequence=codes[starts, 0], times=times[starts], run_is_batch=is_batch[starts],
        run_of=np.cumsum(starts) - 1, codes=codes, is_batch=is_batch, batch_row=batch_row, vocab=vocab,
    )


class _JointSteps(Dataset):
    """Step b: distinct tuples and alert chain counts of slice b of fixed permutations."""

    def __init__(self, tuples: np.ndarray, counts: np.ndarray, chains: ChainCounts, steps: int, seed: int) -> None:
        gen = np.random.default_rng(seed)
        self.tuples, self.counts, self.chains, self.steps = tuples, counts, chains, steps
        self.tuple_slices = np.array_split(gen.permutation(len(tuples)), steps)
        self.alert_slices = np.array_split(gen.permutation(chains.c_s.shape[1]), steps)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, b: int) -> dict[str, torch.Tensor]:
        t, a = self.tuple_slices[b], self.alert_slices[b]
        return {
            "tuples": torch.from_numpy(self.tuples[t]),
            "counts": torch.from_numpy(self.counts[t]),
            **{k: torch.from_numpy(getattr(self.chains, k)[:, a]) for k in ("c_s", "c_u", "t_s", "t_u")},
        }


class AlertDataModule(L.LightningDataModule):
    """Context-tree counts and distinct tuples of encoded alerts, served as joint steps."""

    def __init__(self, encoded: EncodedAlerts, depth: int, tuple_batch: int = 4096, seed: int = 0) -> None:
        super().__init__()
        self.encoded, self.depth, self.tuple_batch, self.seed = encoded, depth, tuple_batch, seed
        self.tree = ContextTree.build(encoded.symbols, encoded.sequence, depth, encoded.n_symbols)
        self.tuples, self.tuple_counts, self.tuple_of = unique_tuples(encoded.codes)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, -(-len(self.tuples) // self.tuple_batch))

    def train_dataloader(self) -> DataLoader:
        steps = _JointSteps(self.tuples, self.tuple_counts, self.tree.chain_counts(True), self.steps_per_epoch, self.seed)
        return DataLoader(steps, batch_size=None, shuffle=False, num_workers=0)

    def predict_dataloader(self) -> DataLoader:
        # The ranking is one global solve: a single predict step over all alerts.
        return DataLoader([0], batch_size=None, num_workers=0)
