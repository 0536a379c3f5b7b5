"""load -> fit -> rank -> write -> log: the one place that strings the stages together."""

from __future__ import annotations

import importlib
import logging
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from car.alerts import AlertTable
from car.data import load_alerts
from car.errors import ConfigError, DataError, error_line
from car.eval.metrics import evaluate_alerts
from car.eval.patterns import evaluate_patterns, label_patterns
from car.memory import check_memory
from car.models.base import AlertRanker, Ranking
from car.models.saved import save_fitted
from car.outputs.files import write_bytes, write_csv, write_graphml, write_json
from car.outputs.pictures import PICTURE_FILES, render_pictures
from car.outputs.ranked import ranked_alerts, ranked_patterns
from car.outputs.report import report_html
from car.outputs.tracking import Tracker
from car.progress import quantity

log = logging.getLogger(__name__)
OUTPUT_FILES = (
    "ranked_alerts.csv", "ranked_patterns.csv", "rejected_alerts.csv", "rejected_history.csv",
    "metrics.json", "attack_graph.graphml", *PICTURE_FILES, "report.html",
)


def configure(seed: int, threads: int) -> None:
    """Seed every generator and set torch's thread count before any work."""
    seed = _whole("seed", seed, 0)
    set_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(threads: int) -> None:
    """torch's intra-op thread count (``threads``, checked: a whole number >= 1)."""
    torch.set_num_threads(_whole("threads", threads, 1))


def _whole(key: str, value: Any, low: int) -> int:
    """``value`` as an int of at least ``low``, else a ConfigError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{key}={value!r} must be a whole number >= {low}, e.g. {key}={low}")
    return value


def model_class(target: Any) -> type[AlertRanker]:
    """The class ``model._target_`` names; it must be an AlertRanker (checked before anything runs)."""
    module, _, name = str(target).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"model._target_={target} cannot be imported ({err}); choose model=car|rarity|hpyp|ngram|ape|deepcase|tiresias") from None
    if not (isinstance(cls, type) and issubclass(cls, AlertRanker)):
        raise ConfigError(f"model._target_={target} is not an AlertRanker; choose model=car|rarity|hpyp|ngram|ape|deepcase|tiresias")
    return cls


def build_model(model_cfg: DictConfig) -> AlertRanker:
    """Instantiate the configured ranker; a bad option becomes a one-line ConfigError.

    Only an AlertRanker subclass is called (checked before instantiation); nested
    ``_target_`` keys reach the model as plain config and are never instantiated.
    """
    model_class(model_cfg.get("_target_"))
    try:
        model = instantiate(model_cfg, _recursive_=False)
    except InstantiationException as err:
        cause = err.__cause__ or err
        raise ConfigError(f"model config {model_cfg.get('_target_')}: {error_line(cause)}") from None
    if not isinstance(model, AlertRanker):
        raise ConfigError(f"model._target_={model_cfg.get('_target_')} is not an AlertRanker")
    return model


def load_inputs(data_cfg: DictConfig) -> tuple[AlertTable, AlertTable | None]:
    """The batch to rank and, if ``data.history`` is set, the history table."""
    history_path, path = data_cfg.get("history"), data_cfg.get("path")
    if history_path and path and Path(str(history_path)).resolve() == Path(str(path)).resolve():
        raise ConfigError(f"data.history={history_path} is data.path itself: its alerts would be learned from "
                          "twice; point data.history at earlier alerts, or drop it")
    table = load_alerts(data_cfg, path)
    log.info("loaded %s (%s rejected) from %s", quantity(len(table), "alert"), f"{len(table.rejected):,}", table.source)
    history = None
    if history_path:
        history = _load_history(data_cfg)
        log.info("loaded %s (%s rejected)", quantity(len(history), "history alert"), f"{len(history.rejected):,}")
        history = _without_the_batch(history, table, history_path)
    return table, history


def _without_the_batch(history: AlertTable, batch: AlertTable, history_path: str) -> AlertTable:
    """``history`` without the batch's own alerts when it holds all of them (an export that spans
    the batch: they would be learned from twice); a ConfigError when it holds nothing else. Alerts
    match on time, entity, type and attributes, copies paired in order. A partial overlap is
    logged and kept: scenarios recorded side by side share alerts by coincidence (AIT-ADS wheeler
    and shaw share 493)."""
    key = ["time", "entity", "type", *batch.attributes]
    counted = [t.alerts[key].assign(copy=t.alerts.groupby(key, sort=False).cumcount()) for t in (history, batch)]
    shared = counted[0].assign(row=np.arange(len(history))).merge(counted[1], on=[*key, "copy"])["row"]
    if len(shared) == len(history):
        raise ConfigError(f"data.history={history_path}: every alert of it is in data.path, so it adds nothing "
                          "and they would be learned from twice; point data.history at earlier alerts, or drop it")
    if len(shared) == len(batch):
        log.info("data.history holds the %s of data.path too: learned from once, as the batch",
                 quantity(len(batch), "alert"))
        keep = np.ones(len(history), dtype=bool)
        keep[shared.to_numpy()] = False
        labels = None if history.labels is None else history.labels[keep].reset_index(drop=True)
        return replace(history, alerts=history.alerts[keep].reset_index(drop=True), labels=labels)
    if len(shared):
        log.info("%s of data.history also in data.path (same time, entity, type and attributes)",
                 quantity(len(shared), "alert"))
    return history


def _load_history(data_cfg: DictConfig) -> AlertTable:
    """``data.history`` read like ``data.path``, but its label columns may be missing: history
    is unlabeled for CAR and the baselines (the peers trained on its labels say so if absent)."""
    try:
        return load_alerts(data_cfg, data_cfg.history, option="data.history")
    except DataError as err:
        if not data_cfg.get("labels"):
            raise
        # Labels are optional here: if the file fails without them too, that error is the one to fix.
        history = load_alerts({**OmegaConf.to_container(data_cfg, resolve=True), "labels": None},
                              data_cfg.history, option="data.history")
        log.info("data.history read without its labels (%s): %s", ", ".join(data_cfg.labels), err)
        return history


def write_outputs(out_dir: Path, table: AlertTable, ranking: Ranking, history: AlertTable | None, metrics: dict[str, float],
                  model_name: str | None = None) -> list[Path]:
    """Write the ranked/rejected CSVs, metrics, attack graph, pictures and report.html; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    alerts = ranked_alerts(table, ranking)
    patterns = label_patterns(ranked_patterns(ranking), ranking.pattern_alerts, table)
    files = [
        write_csv(alerts, out_dir / "ranked_alerts.csv"),
        write_csv(patterns, out_dir / "ranked_patterns.csv"),
        write_csv(table.rejected, out_dir / "rejected_alerts.csv"),
    ]
    if history is not None:
        files.append(write_csv(history.rejected, out_dir / "rejected_history.csv"))
    if metrics:
        files.append(write_json(metrics, out_dir / "metrics.json"))
    if ranking.graph is not None:
        files.append(write_graphml(ranking.graph, out_dir / "attack_graph.graphml"))
    pictures = render_pictures(table, ranking)
    files += [write_bytes(png, out_dir / name) for name, png in pictures.items()]
    page = report_html(table, alerts, patterns, metrics, pictures, model_name)
    files.append(write_bytes(page.encode("utf-8"), out_dir / "report.html"))
    for stale in set(OUTPUT_FILES) - {f.name for f in files}:  # a previous run's, into the same folder
        (out_dir / stale).unlink(missing_ok=True)
    return files


def check_resolves(cfg: DictConfig) -> None:
    """A one-line ConfigError if an interpolation of ``cfg`` points nowhere, e.g. an override
    ``sensitivity.level=l9`` naming a level the chosen factor does not define."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise ConfigError(f"config key {key}: {error_line(err)}; fix the override or the YAML that sets it "
                          "(python train.py ... --cfg job shows the composed config)") from None


def run(cfg: DictConfig, out_dir: Path) -> dict[str, float]:
    """Run one job: returns the evaluation metrics (empty without labels)."""
    check_resolves(cfg)
    configure(cfg.seed, cfg.threads)
    tracker = Tracker(cfg.logger)
    model = build_model(cfg.model)
    table, history = load_inputs(cfg.data)
    check_memory(len(table) + (len(history) if history is not None else 0), cfg.get("memory_limit_gb"))
    tracker.start(run_name=f"{model.name}:{Path(str(table.source)).name}")
    try:
        tracker.log_config(cfg)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        trainer: dict[str, Any] = {**OmegaConf.to_container(cfg.trainer, resolve=True), "logger": tracker.lightning_logger(),
                                   "default_root_dir": str(out_dir)}
        seen_history = history if history is None or model.learns_from_history_labels else history.unlabeled()
        # One line as each long stage starts (the steps inside log their own progress, car/progress.py).
        log.info("fitting %s on %s%s", model.name, quantity(len(table), "alert"),
                 f" and {quantity(len(history), 'history alert')}" if history is not None else "")
        model.fit(table.unlabeled(), seen_history, trainer=trainer)
        timings["time/fit_s"] = time.perf_counter() - start
        log.info("fitted in %.1f s; ranking %s", timings["time/fit_s"], quantity(len(table), "alert"))
        start = time.perf_counter()
        ranking = model.rank(table.unlabeled())
        timings["time/rank_s"] = time.perf_counter() - start
        log.info("ranked in %.1f s; evaluating and writing the outputs to %s", timings["time/rank_s"], out_dir)
        metrics = evaluate_alerts(table, ranking.scores) if table.label_kinds else {}
        metrics |= evaluate_patterns(table, ranking, cfg.get("stage_map"))
        files = write_outputs(out_dir, table, ranking, history, metrics, model.name)
        saved = save_fitted(model, cfg.data, out_dir / "model")  # for `car rank`; None for other rankers
        tracker.log({**metrics, **timings, "alerts/ranked": len(table), "alerts/rejected": len(table.rejected)}, files)
        tracker.log_model(saved)
    except BaseException:
        tracker.end("FAILED")
        raise
    tracker.end()
    _report(out_dir, table, metrics)
    return metrics


def _report(out_dir: Path, table: AlertTable, metrics: dict[str, float]) -> None:
    log.info("ranked %s, rejected %s; outputs in %s", quantity(len(table), "alert"), f"{len(table.rejected):,}", out_dir)
    for kind in table.label_kinds:
        log.info(
            "%s labels: AP raw %.3f grouped %.3f, workload to 95%% recall raw %.3f",
            kind, metrics.get(f"{kind}/raw/ap", float("nan")), metrics.get(f"{kind}/grouped/ap", float("nan")),
            metrics.get(f"{kind}/raw/workload_at_95", float("nan")),
        )
