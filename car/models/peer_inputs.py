"""What the peer rankers (DeepCASE, Tiresias) see: per-entity event sequences over the history's types.

The peers use only (time, machine, event): machine = ``entity``, event = ``type``. Events are
coded by the history's vocabulary: codes ``0..n-1`` are the history's types (sorted), ``n``
is a type the history never had, ``n + 1`` pads a context that has fewer earlier events.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import torch

from car.alerts import AlertTable
from car.errors import ConfigError, is_number


PEER_PACKAGES = ("deepcase", "tiresias")  # the only packages import_peer imports


def import_peer(package: str, model: str) -> ModuleType:
    """Import a peer's package (one of ``PEER_PACKAGES``), or a one-line ConfigError saying how
    to install it."""
    if package not in PEER_PACKAGES:
        raise ValueError(f"{package!r} is not a peer package ({', '.join(PEER_PACKAGES)})")
    try:
        return importlib.import_module(package)
    except ImportError as err:
        raise ConfigError(
            f"model={model} cannot run: package {package} is not importable ({err}); "
            f"install the peers extra: .venv/bin/pip install -e '.[peers]'"
        ) from None


def require_history(history: AlertTable | None, model: str) -> AlertTable:
    """The history table; the peers' protocol trains on it, so without it a ConfigError."""
    if history is None:
        raise ConfigError(
            f"model={model} trains on a labelled history scenario (../shared/docs/benchmark.md, Peers): "
            f"set data.history=<alerts file or folder> (a file format, not data=enterprise_sim), "
            f"as python train.py -m +experiment=ait_ads_peers does"
        )
    if len(history) == 0:
        raise ConfigError(f"model={model}: data.history {history.source} has no usable alerts to train on")
    return history


@dataclass(frozen=True)
class EventCodes:
    """The history's alert types as event codes (see the module docstring)."""

    types: np.ndarray

    @classmethod
    def of(cls, history: AlertTable) -> EventCodes:
        """The codes of the types of ``history``."""
        return cls(np.unique(history.alerts["type"].to_numpy(dtype=str)))

    @property
    def unknown(self) -> int:
        """The code of a type the history never had."""
        return len(self.types)

    @property
    def padding(self) -> int:
        """The code that pads a context with fewer earlier events."""
        return len(self.types) + 1

    @property
    def size(self) -> int:
        """Number of codes: known types, unknown, padding."""
        return len(self.types) + 2

    def encode(self, table: AlertTable) -> np.ndarray:
        """Event code of every alert, shape (n,), int64."""
        types = table.alerts["type"].to_numpy(dtype=str)
        pos = np.searchsorted(self.types, types).clip(max=len(self.types) - 1)
        known = self.types[pos] == types
        return np.where(known, pos, self.unknown).astype(np.int64)


def previous_events(table: AlertTable, codes: EventCodes, length: int,
                    timeout: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Contexts and events: per alert the codes of the ``length`` previous alerts of its entity.

    Returns ``(contexts, events)``: int64 tensors of shape (n, length), oldest first, and (n,).
    An entity's alerts are ordered by time (ties in input order); an earlier alert more than
    ``timeout`` seconds before the alert, or missing, is ``codes.padding``.
    """
    events = codes.encode(table)
    seconds = table.seconds()
    entity = table.alerts["entity"].to_numpy(dtype=str)
    order = np.lexsort((np.arange(len(table)), seconds, entity))
    contexts = np.full((len(table), length), codes.padding, dtype=np.int64)
    for lag in range(1, length + 1):
        now, before = order[lag:], order[:-lag]
        usable = (entity[now] == entity[before]) & (seconds[now] - seconds[before] <= timeout)
        contexts[now[usable], length - lag] = events[before[usable]]
    return torch.from_numpy(contexts), torch.from_numpy(events)


def check_positive(model: str, **options: float) -> None:
    """A one-line ConfigError for the first option that is not > 0."""
    for key, value in options.items():
        if not (is_number(value) and value > 0):
            raise ConfigError(f"model.{key}={value!r} must be a number > 0 for model={model}")
