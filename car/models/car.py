"""CAR behind the ranker interface: encode, fit the CARModule with a Lightning Trainer, rank."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from car.alerts import AlertTable
from car.errors import ConfigError, DataError, error_line, is_number
from car.data.datamodule import AlertDataModule, EncodedAlerts, encode_alerts
from car.models.base import PATTERN_COLUMNS, STEP_SEPARATOR, AlertRanker, Ranking, check_seconds
from car.models.car_module import SCORES, CARModule, RankedAlerts
from car.outputs.attack_graph import attack_graph
from car.progress import quantity
from car.ranking.collaborative import AGREEMENTS
from car.ranking.pattern_order import DIVERSITY, pattern_order
from car.temporal.patterns import BASELINES
from car.temporal.patterns import SCORES as PATTERN_SCORES
from car.temporal.pitman_yor import PRIORS

# trainer.ckpt_path values Lightning resolves itself (not file paths).
LIGHTNING_CHECKPOINTS = ("last", "best", "hpc", "registry")
# A fit from Python without a trainer dict trains as train.py does (conf/trainer/cpu.yaml), quietly.
_TRAINER_DEFAULTS = {"accelerator": "cpu", "devices": 1, "max_epochs": 30, "max_steps": 60, "deterministic": True,
                     "enable_checkpointing": False, "logger": False, "enable_progress_bar": False}


# The options each group of conf/model/car.yaml must have, no more, no fewer.
OPTIONS = {
    "temporal": {"depth", "prior", "run_gap", "order"},
    "content": {"enabled", "dim", "noise_samples", "weight"},
    "patterns": {"k_max", "min_support", "min_lift", "max_gap", "window", "max_patterns", "score",
                 "rarity_weight", "graph_top", "baseline", "diversity"},
    "ranking": {"alpha", "beta", "gamma", "lam", "prior", "rarity_from", "burst_gap", "value_surprise",
                "context_window", "context_weight", "address_window", "address_weight", "content_prior", "normalized",
                "size_weighted", "neighbours", "surprise_bandwidth", "rarity_bandwidth", "normalise_similarity",
                "tuple_pull", "agreement"},
}


RARITY_FROM = ("history", "batch", "both", "all")  # where the prior is counted (CARModule._prior)
MAX_DEPTH = 16  # longest context of the sequence model; the context tree grows with it
MAX_DIM = 1024  # embedding size


def _whole(low: int, high: int | None = None) -> Callable[[object], str | None]:
    """A check of a whole number in [low, high]: None if fine, else what to use."""
    want = f"a whole number >= {low}" if high is None else f"a whole number from {low} to {high}"
    return lambda v: (None if isinstance(v, int) and not isinstance(v, bool) and v >= low and (high is None or v <= high)
                      else want)


def _number(low: float, above: bool = False) -> Callable[[object], str | None]:
    """A check of a finite number >= low (> low with ``above``)."""
    want = f"a finite number {'>' if above else '>='} {low:g}"
    return lambda v: None if is_number(v) and math.isfinite(v) and (v > low if above else v >= low) else want


def _choice(values: tuple[str, ...]) -> Callable[[object], str | None]:
    return lambda v: None if v in values else f"one of {', '.join(values)}"


def _text(v: object) -> str | None:
    return None if isinstance(v, str) and v.strip() else "a non-empty text, e.g. car_variant"


def _flag(v: object) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _seconds(v: object) -> str | None:
    return None if is_number(v) and v >= 0 else "seconds >= 0 (.inf for no limit)"


# What each option of conf/model/car.yaml takes, beyond the options that check_options checks
# itself (temporal.order, and the options that may be null: see its docstring).
VALUES: dict[tuple[str, str], Callable[[object], str | None]] = {
    ("temporal", "depth"): _whole(0, MAX_DEPTH), ("temporal", "prior"): _choice(PRIORS),
    ("temporal", "run_gap"): _seconds,
    ("content", "enabled"): _flag, ("content", "dim"): _whole(1, MAX_DIM), ("content", "noise_samples"): _whole(1, 1000),
    ("content", "weight"): _number(0),
    ("patterns", "k_max"): _whole(1), ("patterns", "min_support"): _whole(1), ("patterns", "min_lift"): _number(0),
    ("patterns", "max_gap"): _whole(1), ("patterns", "window"): _number(0, above=True),
    ("patterns", "max_patterns"): _whole(0), ("patterns", "score"): _choice(PATTERN_SCORES),
    ("patterns", "rarity_weight"): _number(0), ("patterns", "graph_top"): _whole(0),
    ("patterns", "baseline"): _choice(BASELINES), ("patterns", "diversity"): _choice(DIVERSITY),
    ("ranking", "alpha"): _number(0), ("ranking", "beta"): _number(0), ("ranking", "gamma"): _number(0, above=True),
    ("ranking", "lam"): _number(0), ("ranking", "content_prior"): _number(0), ("ranking", "prior"): _flag,
    ("ranking", "normalized"): _flag, ("ranking", "size_weighted"): _flag, ("ranking", "neighbours"): _whole(1),
    ("ranking", "rarity_from"): _choice(RARITY_FROM), ("ranking", "value_surprise"): _flag,
    ("ranking", "normalise_similarity"): _flag, ("ranking", "tuple_pull"): _number(0),
    ("ranking", "agreement"): _choice(AGREEMENTS),
}


def check_options(groups: Mapping[str, Mapping]) -> None:
    """A one-line ConfigError for a model option group given as one value (``model.content=false``),
    an unknown or missing key of a group, or a value an option cannot take (``VALUES``;
    ``temporal.order`` against the depth and prior; the options that may be null:
    ``ranking.burst_gap``, the contexts' windows, ``surprise_bandwidth`` and ``rarity_bandwidth``;
    the contexts' weights)."""
    for group, keys in OPTIONS.items():
        if not isinstance(groups[group], Mapping):
            raise ConfigError(f"model.{group}={groups[group]!r}: model.{group} is a group of options, not a value; "
                              f"set one as model.{group}.<option>=<value>; options: {', '.join(sorted(keys))}")
        given = set(groups[group])
        for key in sorted(given - keys):
            raise ConfigError(f"model.{group}.{key} is not an option; valid: {', '.join(sorted(keys))}")
        for key in sorted(keys - given):
            raise ConfigError(f"model.{group}.{key} is missing; start from conf/model/car.yaml")
    for (group, key), check in VALUES.items():
        want = check(groups[group][key])
        if want is not None:
            raise ConfigError(f"model.{group}.{key}={groups[group][key]!r}: use {want}")
    temporal = groups["temporal"]
    order = temporal["order"]
    if order is not None and (_whole(1, temporal["depth"])(order) is not None or temporal["prior"] != "ngram"):
        raise ConfigError(f"model.temporal.order={order!r}: use a whole number from 1 to temporal.depth "
                          f"({temporal['depth']}) with temporal.prior=ngram, or null (the order is the depth)")
    ranking = groups["ranking"]
    check_seconds(ranking["burst_gap"], "model.ranking.burst_gap")
    check_seconds(ranking["context_window"], "model.ranking.context_window", "for no entity context")
    check_seconds(ranking["address_window"], "model.ranking.address_window", "for no address context")
    for key in ("context_weight", "address_weight"):
        if not (is_number(ranking[key]) and ranking[key] >= 0):
            raise ConfigError(f"model.ranking.{key}={ranking[key]!r}: use a number >= 0")
    for key in ("surprise_bandwidth", "rarity_bandwidth"):
        bandwidth = ranking[key]
        if bandwidth is not None and not (is_number(bandwidth) and bandwidth > 0):
            raise ConfigError(f"model.ranking.{key}={bandwidth!r}: use nats > 0, or null for none")


def _check_score_terms(groups: Mapping[str, Mapping], score: str) -> None:
    """A one-line ConfigError when ``score`` has no term left and would be 0 for every alert:
    content anomaly with content off, or the collaborative ranking without its prior
    (``ranking.prior`` false or ``ranking.lam`` 0) and without patterns (``ranking.alpha`` 0)."""
    if score == "content" and not groups["content"]["enabled"]:
        raise ConfigError("model.score=content with model.content.enabled=false scores every alert 0; "
                          "set model.content.enabled=true, or choose model.score=collaborative or temporal")
    ranking = groups["ranking"]
    no_prior = ("model.ranking.prior=false" if not ranking["prior"]
                else "model.ranking.lam=0" if ranking["lam"] == 0 else None)
    if score == "collaborative" and no_prior and ranking["alpha"] == 0:
        raise ConfigError(f"{no_prior} with model.ranking.alpha=0 scores every alert 0 (no prior, no pattern term); "
                          "set model.ranking.alpha > 0, or turn the prior back on")


def _trainer(options: dict[str, Any]) -> L.Trainer:
    """A Lightning Trainer; options it refuses are a one-line ConfigError naming trainer.*."""
    lowest = {"max_epochs": -1, "max_steps": -1, "min_epochs": -1, "min_steps": -1, "log_every_n_steps": -1,
              "accumulate_grad_batches": 1}
    for key, low in lowest.items():
        value = options.get(key)  # Lightning checks some of these only once the fit runs
        want = None if value is None else _whole(low)(value)
        if want is not None:
            raise ConfigError(f"trainer.{key}={value!r}: use {want} (conf/trainer/cpu.yaml)")
    if options.get("max_epochs") == -1 and options.get("max_steps", -1) == -1 and options.get("max_time") is None:
        raise ConfigError("trainer.max_epochs=-1 with trainer.max_steps=-1 trains without end (nothing stops a CAR "
                          "fit early); bound one of them, e.g. trainer.max_steps=60 (conf/trainer/cpu.yaml)")
    try:
        return L.Trainer(**options)
    except (TypeError, ValueError, AssertionError, ImportError, MisconfigurationException) as err:
        # ImportError: an accelerator or strategy whose package is not installed (tpu: torch_xla)
        reason = error_line(err).rstrip(".")
        raise ConfigError(f"trainer: {reason}; fix the trainer.* override (conf/trainer/cpu.yaml lists the options)"
                          ) from None


def check_checkpoint(path: str, module: CARModule) -> None:
    """A one-line DataError unless ``path`` (``trainer.ckpt_path``) is a checkpoint of a CAR fit
    with the same parameters as ``module``: the same data and model options. Read as tensors
    and plain containers only (weights_only), like the resume itself."""
    where = f"trainer.ckpt_path={path}"
    fix = "give a .ckpt that a CAR run with the same data and model options wrote (trainer.enable_checkpointing=true)"
    if not Path(path).is_file():
        raise DataError(f"{where}: no such file; {fix}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises pickle, zip and runtime errors alike for a bad file
        reason = error_line(err)[:200]
        raise DataError(f"{where}: not a readable checkpoint ({reason}); {fix}") from None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise DataError(f"{where}: not a checkpoint of a CAR fit; {fix}")
    missing = [key for key in ("optimizer_states", "loops", "nce_noise_state") if key not in checkpoint]
    if missing:  # e.g. a checkpoint saved with weights only: Lightning would stop with a KeyError
        raise DataError(f"{where}: not a checkpoint of a CAR fit that can resume (no {', '.join(missing)}); {fix}")
    noise = checkpoint["nce_noise_state"]
    if not isinstance(noise, torch.Tensor) or noise.dtype != torch.uint8:
        raise DataError(f"{where}: not a checkpoint of a CAR fit (its nce_noise_state is no generator state); {fix}")
    mine = module.state_dict()
    if set(state) != set(mine) or any(getattr(state[k], "shape", None) != mine[k].shape for k in mine):
        raise DataError(f"{where}: written by a fit on other alerts or with other model options (its parameters "
                        f"differ in name or shape); {fix}")


class CAR(AlertRanker):
    """Collaborative alert ranking (docs/method.md); ``score`` selects CAR or a one-model baseline.

    temporal, content, patterns, ranking: the option groups of conf/model/car.yaml.
    score: ``collaborative`` (CAR), ``temporal`` (Pitman-Yor surprise alone, model=hpyp /
    model=ngram) or ``content`` (APE anomaly alone, model=ape).
    """

    def __init__(self, temporal: Mapping, content: Mapping, patterns: Mapping, ranking: Mapping,
                 lr: float = 0.05, tuple_batch: int = 4096, score: str = "collaborative", seed: int = 0,
                 name: str = "car") -> None:
        check_options({"temporal": temporal, "content": content, "patterns": patterns, "ranking": ranking})
        groups = {"temporal": dict(temporal), "content": dict(content), "patterns": dict(patterns),
                  "ranking": dict(ranking)}
        for key, value, check in (("lr", lr, _number(0, above=True)), ("tuple_batch", tuple_batch, _whole(1)),
                                  ("score", score, _choice(SCORES)), ("name", name, _text)):
            if check(value) is not None:
                raise ConfigError(f"model.{key}={value!r}: use {check(value)}")
        _check_score_terms(groups, score)
        self.options = {**groups, "lr": lr, "score": score, "seed": seed}
        self.tuple_batch, self.seed, self.name = tuple_batch, seed, name
        self.module: CARModule | None = None
        self.data: AlertDataModule | None = None

    def fit(self, alerts: AlertTable, history: AlertTable | None = None, trainer: dict[str, Any] | None = None) -> CAR:
        """Encode ``alerts`` (and ``history``) and train the CARModule with a Lightning Trainer;
        ``trainer``: its options (``ckpt_path`` resumes from a checkpoint)."""
        encoded = encode_alerts(alerts, history, float(self.options["temporal"]["run_gap"]))
        self.data = AlertDataModule(encoded, self.options["temporal"]["depth"], self.tuple_batch, self.seed)
        self.module = CARModule(encoded.n_symbols, [len(v) for v in encoded.vocab.values()], **self.options)
        self.module.set_noise(self.data.tuples, self.data.tuple_counts)
        self.module.threads = torch.get_num_threads()  # the run's ``threads``, for every DDP process too
        # The datamodule gives each DDP process its part of every step; a DistributedSampler must not re-split.
        options = {**_TRAINER_DEFAULTS, **(trainer or {}), "enable_model_summary": False, "use_distributed_sampler": False}
        resume = options.pop("ckpt_path", None)
        if options.get("enable_checkpointing") and not options.get("callbacks"):
            # Lightning's default name, epoch=4-step=20.ckpt, is no valid Hydra override value unquoted.
            options["callbacks"] = [ModelCheckpoint(filename="epoch{epoch}-step{step}", auto_insert_metric_name=False)]
        if resume is not None and str(resume) not in LIGHTNING_CHECKPOINTS:
            check_checkpoint(str(resume), self.module)
        L.seed_everything(self.seed, workers=True, verbose=False)
        self.trainer = _trainer(options)
        self.data.check_processes(self.trainer.num_nodes * self.trainer.num_devices)
        # weights_only: a checkpoint is loaded as tensors and plain containers, never as code.
        self.trainer.fit(self.module, datamodule=self.data, ckpt_path=resume, weights_only=True)
        if self.trainer.received_sigterm:  # marked by the Trainer after the loop's last check for it
            raise SIGTERMException
        return self

    def rank(self, alerts: AlertTable) -> Ranking:
        """Rank the batch alerts of the fit: ``alerts`` is the table ``fit`` was given (new alerts:
        car/models/saved.py)."""
        if self.module is None:
            raise RuntimeError("CAR.rank called before fit")
        # One global solve, in this process: after a DDP fit (ddp_spawn) the fitted weights are back here.
        predictor = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                              enable_model_summary=False)
        (ranked,) = predictor.predict(self.module, datamodule=self.data)
        return to_ranking(ranked, self.data.encoded, alerts, self.options["patterns"])

    def rank_encoded(self, encoded: EncodedAlerts, alerts: AlertTable) -> tuple[Ranking, AlertDataModule]:
        """Rank the batch alerts of ``encoded`` (rows of ``alerts``) with the fitted parameters and
        the counts of every alert of ``encoded``, without training: online ranking with a saved
        model (car/models/saved.py). Returns the ranking and the datamodule holding those counts."""
        if self.module is None:
            raise RuntimeError("CAR.rank_encoded called before fit or load")
        data = AlertDataModule(encoded, self.options["temporal"]["depth"], self.tuple_batch, self.seed)
        ranked = self.module.rank_alerts(data)
        return to_ranking(ranked, encoded, alerts, self.options["patterns"]), data


def to_ranking(ranked: RankedAlerts, enc: EncodedAlerts, alerts: AlertTable, patterns: Mapping) -> Ranking:
    """Map encoded-order results back to the batch table's rows and build the pattern outputs
    (``patterns``: the options group; ``diversity`` orders them, ``graph_top`` are drawn)."""
    rows = enc.batch_row[enc.is_batch]
    n = len(alerts)
    scores, temporal, content = (np.empty(n) for _ in range(3))
    scores[rows], temporal[rows], content[rows] = ranked.scores, ranked.temporal, ranked.content
    unusual, linked, lifted = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64), np.empty(n, dtype=bool)
    unusual[rows], linked[rows], lifted[rows] = ranked.unusual, ranked.linked, ranked.lifted
    occ = ranked.occurrences
    order, novelty = pattern_order(ranked.pattern_scores, [p.symbols for p in ranked.patterns],
                                   patterns["diversity"], occ.count)
    pattern_id = np.empty(len(order), dtype=np.int64)
    pattern_id[order] = np.arange(1, len(order) + 1)  # pattern_id = rank of the pattern
    best = _best_pattern(rows[occ.alert_idx], pattern_id[occ.pattern_idx], n)
    table = _pattern_table(ranked, enc, alerts, pattern_id, novelty)
    frame = alerts.alerts.iloc[rows]
    graph = attack_graph(frame["entity"].to_numpy(), frame["type"].to_numpy(), frame["time"], occ, pattern_id,
                         patterns["graph_top"])
    return Ranking(
        scores=scores,
        columns={"temporal_score": temporal, "content_score": content, "pattern_id": best,
                 "why": explanations(alerts, enc, best, content, table, ranked.type_bursts, unusual,
                                            lifted, linked)},
        patterns=table,
        pattern_alerts=np.column_stack([rows[occ.alert_idx], pattern_id[occ.pattern_idx]]),
        graph=graph,
    )


def _best_pattern(alert_rows: np.ndarray, ids: np.ndarray, n: int) -> pd.array:
    """Per alert the best-ranked (lowest id) pattern it occurs in; <NA> where none, shape (n,)."""
    best = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(best, alert_rows, ids)
    return pd.array(np.where(best == np.iinfo(np.int64).max, None, best), dtype="Int64")


def _pattern_table(ranked: RankedAlerts, enc: EncodedAlerts, alerts: AlertTable, pattern_id: np.ndarray,
                   novelty: np.ndarray) -> pd.DataFrame:
    """One row per pattern with the columns of PATTERN_COLUMNS, in rank order (``pattern_id`` (L,)
    each pattern's rank, ``novelty`` (L,) the share of its step types new at that rank)."""
    if not ranked.patterns:
        return pd.DataFrame(columns=PATTERN_COLUMNS)
    occ, types = ranked.occurrences, enc.vocab["type"]
    batch_rows = enc.batch_row[enc.is_batch]
    frame = alerts.alerts
    occ_entities = frame["entity"].to_numpy()[batch_rows[occ.occ_first]]
    times = frame["time"].to_numpy(dtype="datetime64[ns]")
    first_t, last_t = times[batch_rows[occ.occ_first]], times[batch_rows[occ.occ_last]]
    per = pd.DataFrame({"p": occ.occ_pattern, "entity": occ_entities, "first": first_t, "last": last_t})
    grouped = per.groupby("p").agg(entities=("entity", lambda e: ";".join(sorted(set(e))[:20])),
                                   first_time=("first", "min"), last_time=("last", "max"))
    alert_count = np.bincount(occ.pattern_idx, minlength=len(ranked.patterns))
    table = pd.DataFrame({
        "rank": pattern_id,
        "pattern_id": pattern_id,
        "score": ranked.pattern_scores,
        "novelty": novelty,
        "dependency": [p.dependency for p in ranked.patterns],
        "steps": [STEP_SEPARATOR.join(str(types[s]) for s in p.symbols) for p in ranked.patterns],
        "occurrences": occ.count,
        "alert_count": alert_count,
    }).join(grouped)
    table["first_time"] = pd.to_datetime(table["first_time"], utc=True)
    table["last_time"] = pd.to_datetime(table["last_time"], utc=True)
    table["next_steps"] = ["; ".join(f"{types[s]} ({p:.2f})" for s, p in steps) for steps in ranked.next_steps]
    return table.sort_values("rank").reset_index(drop=True)[PATTERN_COLUMNS]


def explanations(alerts: AlertTable, enc: EncodedAlerts, pattern_id: pd.array, content: np.ndarray,
                 patterns: pd.DataFrame, type_bursts: np.ndarray | None, unusual: np.ndarray, lifted: np.ndarray,
                 linked: np.ndarray, anomalous: float = 0.99) -> np.ndarray:
    """A plain-words reason per alert (n,), from the model's own terms: the pattern the alert
    is a step of, how often its type occurs (history included; in how many bursts, given
    ``type_bursts`` per type code), which attribute value is unusual for its type (``unusual``
    (n,): index into the table's attributes, -1 for none), whether a more unusual alert of the
    same entity nearby lifted its prior (``lifted`` (n,) bool), which shared address linked it to
    a more unusual alert (``linked`` (n,): index into the attributes, -1 for none), and whether
    its attribute combination is among the most anomalous (content score above the
    ``anomalous`` quantile). Each distinct reason is written once and shared (3 M alerts hold few)."""
    frame = alerts.alerts
    type_counts = dict(zip(enc.vocab["type"], np.bincount(enc.codes[:, 1], minlength=enc.n_symbols).tolist()))
    bursts = dict(zip(enc.vocab["type"], type_bursts.tolist())) if type_bursts is not None else {}
    ids = pattern_id.to_numpy(dtype=np.int64, na_value=0) if len(patterns) else np.zeros(len(frame), np.int64)
    rare = np.zeros(len(frame), dtype=bool)
    if len(content) > 1 and np.ptp(content) > 0:
        rare = content > np.quantile(content, anomalous)
    value = np.full(len(frame), "", dtype=object)
    for a, name in enumerate(alerts.attributes):
        at = np.flatnonzero(unusual == a)
        value[at] = [f"; {name} {v} unusual for this type" for v in frame[name].iloc[at]]
        at = np.flatnonzero(linked == a)
        value[at] += [f"; raised by a more unusual alert sharing {name} {v} nearby" for v in frame[name].iloc[at]]
    # Alerts share a reason where these codes agree.
    keys = pd.DataFrame({"type": pd.factorize(frame["type"])[0], "pattern": ids,
                         "entity": np.where(ids > 0, pd.factorize(frame["entity"])[0], -1),
                         "value": pd.factorize(value)[0], "lifted": lifted, "rare": rare})
    codes = keys.groupby(list(keys.columns), sort=False).ngroup().to_numpy()
    first = np.unique(codes, return_index=True)[1]  # each reason's first alert
    steps = dict(zip(patterns["pattern_id"], patterns["steps"])) if len(patterns) else {}
    combination = f"; attribute combination more unusual than {100 * anomalous:.0f}% of alerts"
    nearby = "; raised by a more unusual alert of the same entity nearby"
    total = f" in {quantity(len(enc.codes), 'alert')}"
    reasons = []
    for alert_type, pattern, entity, odd_value, is_lifted, is_rare in zip(
            frame["type"].iloc[first], ids[first], frame["entity"].iloc[first], value[first], lifted[first], rare[first]):
        lead = f"{_step_of(steps[pattern], alert_type)} of pattern {pattern} ({steps[pattern]}) on {entity}; " if pattern else ""
        events = f" ({quantity(bursts[alert_type], 'burst')})" if bursts else ""
        reasons.append(f"{lead}type {alert_type} seen {quantity(type_counts[alert_type], 'time')}{total}{events}{odd_value}"
                       f"{nearby if is_lifted else ''}{combination if is_rare else ''}")
    return np.asarray(reasons, dtype=object)[codes]


def _step_of(steps: str, alert_type: str) -> str:
    """``step 2`` (or ``step 1 or 3`` where the type repeats) of ``alert_type`` in ``A > B > C``."""
    at = [str(i + 1) for i, s in enumerate(steps.split(STEP_SEPARATOR)) if s == alert_type]
    return f"step {' or '.join(at)}"
