"""``car compare``: the MLflow runs of one experiment side by side.

One row per method, scenario and protocol, one column per metric: mean and standard deviation
over the seeds; then per method and protocol the mean over scenarios (``overall.csv`` and a
second Markdown table). Written as CSV (long: one line per metric) and Markdown (wide), with PNG plots
(a bar chart per metric, precision-recall curves per scenario from the runs' ranked_alerts.csv),
and logged as the artifacts of a summary run in the same experiment, tagged ``car.summary`` so
that the next comparison leaves it out.

A run's method, scenario and protocol are its params ``method``, ``scenario`` and ``protocol``
(set by the experiment configs); without them, the model and input of its run name
``<model>:<input>``.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from car.errors import ConfigError, error_line
from car.eval.metrics import precision_recall_curve
from car.outputs.files import write_bytes, write_csv
from car.outputs.pictures import STYLE, agg_figure, label_precision_recall, png
from car.outputs.tracking import sqlite_path, store_error_line

SUMMARY_TAG = "car.summary"
GROUP = ["method", "scenario", "protocol"]
RUN_COLUMNS = ["run_id", "start_time", *GROUP, "seed"]  # the columns of load_runs before the metrics
DEFAULT_METRICS = ("*/raw/ap", "*/grouped/ap", "*/raw/workload_at_95", "*/grouped/workload_at_95", "patterns/*")
CURVE_POINTS = 2000  # points drawn per precision-recall curve
RANKED_ALERTS = "ranked_alerts.csv"
LIGHTNING_MODELS = ("car.models.car.CAR",)  # model._target_ of the models a Trainer fits (trainer.* matters)
FIT_NEUTRAL_TRAINER = ("enable_progress_bar", "enable_checkpointing", "ckpt_path", "log_every_n_steps")  # same ranking


@dataclass
class Comparison:
    """runs: one row per compared run (run_id, method, scenario, protocol, seed, metrics);
    replaced: earlier runs left out because a later run repeats their method, scenario,
    protocol and seed; table: one row per method, scenario, protocol and metric with mean, std,
    min, max and seeds (runs with a value); files: everything written, in writing order;
    unnamed: a note when replaced runs set a model option differently (a sweep whose variants
    have no method name), else empty; unfinished: a note naming the runs left out because they
    failed, were killed or are still running (and no finished run repeats them), else empty;
    mixed: a note when the compared runs of a method, scenario and protocol set an option
    differently from seed to seed, else empty; unlogged: why the summary run could not be
    written to the store (read-only), else empty."""

    runs: pd.DataFrame
    replaced: int
    table: pd.DataFrame
    files: list[Path]
    unnamed: str = ""
    unfinished: str = ""
    mixed: str = ""
    unlogged: str = ""


def compare(experiment: str, uri: str, out: Path, metrics: tuple[str, ...] = DEFAULT_METRICS,
            curves: bool = True) -> tuple[Comparison, str]:
    """Compare the finished runs of ``experiment``, write the files into ``out`` and log them as
    a summary run; returns the comparison and the summary run's id ("" if the store cannot be
    written: the files are there, ``Comparison.unlogged`` says why)."""
    import mlflow

    experiment_id = _experiment_id(mlflow, experiment, uri)
    runs, replaced, unnamed, unfinished, mixed = load_runs(mlflow, experiment_id, experiment)
    table = summarize(runs, select_metrics(runs, metrics))
    out.mkdir(parents=True, exist_ok=True)
    means = overall(table)
    text = markdown(table, runs) + "\n" + overall_markdown(means)
    files = [write_csv(table, out / "comparison.csv"), write_csv(means, out / "overall.csv"),
             write_bytes(text.encode("utf-8"), out / "comparison.md")]
    files += [write_bytes(picture, out / name) for name, picture in bar_pictures(table).items()]
    if curves:
        files += [write_bytes(picture, out / name) for name, picture in curve_pictures(mlflow, runs).items()]
    comparison = Comparison(runs, replaced, table, files, unnamed, unfinished, mixed)
    try:
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"compare:{experiment}", tags={SUMMARY_TAG: "true"}) as run:
            mlflow.log_params({"compared_runs": len(runs), "metrics": " ".join(metrics)})
            for path in files:
                mlflow.log_artifact(str(path))
    except Exception as err:  # a store read, not written: read-only (a colleague's, a mount), locked, full
        comparison.unlogged = store_error_line(err)[:200]
        return comparison, ""
    return comparison, run.info.run_id


def store_uri(tracking_uri: str) -> str:
    """``tracking_uri``, checked: a sqlite store must exist (MLflow would create an empty one)."""
    path = sqlite_path(tracking_uri)
    if path is not None and not path.is_file():
        raise ConfigError(f"no MLflow store at {tracking_uri}; pass the store of the runs with "
                          "--tracking-uri sqlite:///<path>/mlflow.db (or set MLFLOW_TRACKING_URI)")
    return tracking_uri


def _experiment_id(mlflow: Any, experiment: str, uri: str) -> str:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(store_uri(uri))
    try:
        found = mlflow.get_experiment_by_name(experiment)
        names = "" if found else ", ".join(sorted(e.name for e in mlflow.search_experiments())) or "none"
    except Exception as err:  # a URI MLflow cannot open: a plain path, file://, an unreachable server
        first = error_line(err).split(". ")[0]
        raise ConfigError(f"MLflow store {uri} cannot be read ({type(err).__name__}: {first[:200]}); pass the store "
                          "of the runs with --tracking-uri sqlite:///<path>/mlflow.db (or set MLFLOW_TRACKING_URI)") from None
    if found is None:
        raise ConfigError(f"no MLflow experiment {experiment!r} in {uri} (experiments there: {names}); "
                          f"run it first, e.g. python train.py -m +experiment={experiment}")
    return found.experiment_id


def load_runs(mlflow: Any, experiment_id: str, experiment: str) -> tuple[pd.DataFrame, int, str, str, str]:
    """The finished, non-summary runs (run_id, start_time, method, scenario, protocol, seed and
    one column per metric), how many were replaced (of runs repeating a method, scenario,
    protocol and seed only the latest is kept: a re-run replaces the earlier one), a note if
    replaced runs set a model option differently (`unnamed_variants`), a note naming the runs
    that did not finish (`unfinished_runs`) and a note if the compared runs of a method mix
    settings (`mixed_settings`)."""
    every = mlflow.search_runs(experiment_ids=[experiment_id])
    if len(every) and f"tags.{SUMMARY_TAG}" in every:
        every = every[every[f"tags.{SUMMARY_TAG}"] != "true"]
    done = (every["status"] == "FINISHED") if len(every) else pd.Series(dtype=bool)
    found = every[done]
    if not len(found):
        count = "1 run there did" if len(every) == 1 else f"{len(every)} runs there did"
        left = f" ({count} not finish: {_status_counts(every)})" if len(every) else ""
        raise ConfigError(f"MLflow experiment {experiment!r} has no finished runs to compare{left}; run it first, "
                          f"e.g. python train.py -m +experiment={experiment}")
    runs = _run_keys(found)
    unnamed = unnamed_variants(runs, found)
    unfinished = unfinished_runs(_run_keys(every[~done]).assign(status=every.loc[~done, "status"].to_numpy()), runs)
    metric_columns = [c for c in found.columns if c.startswith("metrics.")]
    runs = pd.concat([runs, found[metric_columns].rename(columns=lambda c: c.removeprefix("metrics.")).reset_index(drop=True)], axis=1)
    latest = runs.sort_values("start_time").drop_duplicates([*GROUP, "seed"], keep="last")
    mixed = mixed_settings(latest, found.iloc[latest.index])
    latest = latest.sort_values([*GROUP, "seed"], key=_natural).reset_index(drop=True)
    return latest, len(runs) - len(latest), unnamed, unfinished, mixed


def _run_keys(found: pd.DataFrame) -> pd.DataFrame:
    """run_id, start_time, method, scenario, protocol and seed of each run of ``found``."""
    name = found["tags.mlflow.runName"].fillna(":").str.split(":", n=1) if len(found) else pd.Series(dtype=object)
    return pd.DataFrame({
        "run_id": found["run_id"].to_numpy(),
        "start_time": found["start_time"].to_numpy(),
        "method": _param(found, "method", name.str[0]),
        "scenario": _param(found, "scenario", name.str[1]),
        "protocol": _param(found, "protocol", pd.Series("", index=found.index)),
        "seed": _param(found, "seed", pd.Series("", index=found.index)),
    })


def _status_counts(found: pd.DataFrame) -> str:
    """``FAILED 2, RUNNING 1``: how many runs of ``found`` have each status."""
    return ", ".join(f"{status} {count}" for status, count in found["status"].value_counts().sort_index().items())


def unfinished_runs(unfinished: pd.DataFrame, finished: pd.DataFrame) -> str:
    """A note naming the runs that failed, were killed or are still running (status other than
    FINISHED) and that no finished run repeats (same method, scenario, protocol and seed), else
    "": they are left out, so their cells average fewer seeds than the sweep ran."""
    key = [*GROUP, "seed"]
    done = set(finished[key].itertuples(index=False, name=None))
    missing = unfinished[[k not in done for k in unfinished[key].itertuples(index=False, name=None)]]
    if not len(missing):
        return ""
    missing = missing.sort_values(key, key=_natural)
    names = [" ".join(p for p in (r.method, r.scenario, r.protocol, f"seed {r.seed}" if r.seed else "") if p) + f" ({r.status})"
             for r in missing.itertuples()]
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    runs, them = (("1 run did not finish and is", "it") if len(missing) == 1
                  else (f"{len(missing)} runs did not finish and are", "them"))
    return (f"note: {runs} left out ({_status_counts(missing)}): {shown}; "
            f"re-run {them} (RUNNING: still going, or killed without a chance to end the run)")


def unnamed_variants(runs: pd.DataFrame, found: pd.DataFrame) -> str:
    """A note if runs that share method, scenario, protocol and seed set a model option (or a
    trainer option of a Lightning fit) differently, else "": likely a sweep over that option whose
    variants were not named, of which only the latest is compared. The same for a data option of
    runs without a ``scenario`` param, whose scenario is the input's file name (``enterprise_sim``
    for every simulator setting, ``alerts.csv`` for files of that name in different folders). (A
    param one run lacks, an option added since, differs from nothing; other data under a named
    scenario is a re-run by design.)"""
    differ = _first_difference(runs, found, [*GROUP, "seed"])
    if differ is None:
        return ""
    (method, scenario, protocol, seed), option, values = differ
    return (f"note: runs of method={method} (scenario {scenario or '-'}, protocol {protocol or '-'}, seed {seed}) "
            f"differ in {option} ({values}); only the latest is compared: {_name_them(option)}")


def mixed_settings(runs: pd.DataFrame, found: pd.DataFrame) -> str:
    """A note if the compared runs of one method, scenario and protocol (one per seed) set an
    option that `unnamed_variants` looks at differently, else "": their mean and spread mix two
    settings, e.g. of two sweeps into one experiment with other options. Options that follow the
    seed (``model.seed``, the simulator's ``data.seed``) are left aside."""
    differ = _first_difference(runs, found, GROUP)
    if differ is None:
        return ""
    (method, scenario, protocol), option, values = differ
    return (f"note: the compared runs of method={method} (scenario {scenario or '-'}, protocol {protocol or '-'}) "
            f"differ in {option} ({values}) from seed to seed, so their mean mixes these settings: {_name_them(option)}")


def _first_difference(runs: pd.DataFrame, found: pd.DataFrame, key: list[str]) -> tuple[tuple, str, str] | None:
    """The first group of ``runs`` by ``key`` whose runs (rows of ``found``, in the same order) set
    a model option, a trainer option that changes a Lightning fit (of the CAR family), or a data
    option of runs without a ``scenario`` param, differently: its key, the option and its values
    (``a / b``); None if there is none."""
    unnamed = found["params.scenario"].isna() if "params.scenario" in found else pd.Series(True, index=found.index)
    options = [c for c in found.columns if c.startswith(("params.model.", "params.data.", "params.trainer."))
               and not c.endswith(".seed") and c.removeprefix("params.trainer.") not in FIT_NEUTRAL_TRAINER]
    values = found[options].copy()
    data = [c for c in options if c.startswith("params.data.")]
    values.loc[~unnamed, data] = np.nan  # a named scenario's data may change (a moved folder): a re-run
    fitted = found.get("params.model._target_", pd.Series(index=found.index)).isin(LIGHTNING_MODELS)
    values.loc[~fitted, [c for c in options if c.startswith("params.trainer.")]] = np.nan  # rarity: no Trainer
    keyed = pd.concat([runs[key].reset_index(drop=True), values.reset_index(drop=True)], axis=1)
    distinct = keyed.groupby(key, sort=False)[options].nunique(dropna=True).gt(1).stack()
    if not distinct.any():
        return None
    *group, column = distinct[distinct].index[0]
    same = (keyed[key] == group).all(axis=1)
    return tuple(group), column.removeprefix("params."), " / ".join(dict.fromkeys(keyed.loc[same, column].dropna()))


def _name_them(option: str) -> str:
    """How to keep variants that differ in ``option`` apart in the comparison."""
    name = "scenario" if option.startswith("data.") else "method"
    return f"to compare such variants, name each with {name}=<name> (+{name}=<name> where the experiment sets none)"


def _param(found: pd.DataFrame, key: str, fallback: pd.Series) -> np.ndarray:
    """Param ``key`` of each run, ``fallback`` where the run has none; text, shape (runs,)."""
    column = found.get(f"params.{key}", pd.Series(np.nan, index=found.index))
    return column.fillna(fallback).fillna("").astype(str).to_numpy()


def _natural(column: pd.Series) -> pd.Series:
    """Sort key: numbers as numbers (seed 10 after seed 9), other text as text."""
    numbers = pd.to_numeric(column, errors="coerce")
    return numbers if numbers.notna().all() else column


def select_metrics(runs: pd.DataFrame, patterns: tuple[str, ...]) -> list[str]:
    """Metric columns of ``runs`` matching any of the glob ``patterns``: grouped by label kind
    (alphabetically, pattern metrics last), in pattern order within a group."""
    names = [c for c in runs.columns if c not in RUN_COLUMNS and runs[c].notna().any()]
    chosen = list(dict.fromkeys(n for p in patterns for n in names if fnmatch.fnmatchcase(n, p)))
    if not chosen:
        raise ConfigError(f"no metric of the runs matches --metrics {' '.join(patterns)}; "
                          f"they have: {', '.join(names[:20]) or 'none'}")
    return sorted(chosen, key=_metric_group)  # stable: pattern order within a group


def _metric_group(name: str) -> tuple[bool, str]:
    """Sort key of a metric's group: its first part (``strict`` of ``strict/raw/ap``), ``patterns`` last."""
    group = name.split("/")[0]
    return group == "patterns", group


def summarize(runs: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Mean, sample standard deviation (NaN for one seed), min, max and number of seeds with a
    value, per method, scenario, protocol and metric."""
    long = runs.melt(id_vars=GROUP, value_vars=metrics, var_name="metric").dropna(subset="value")
    order = {m: i for i, m in enumerate(metrics)}
    stats = long.groupby([*GROUP, "metric"], sort=False)["value"].agg(["mean", "std", "min", "max", "count"])
    stats = stats.rename(columns={"count": "seeds"}).reset_index()
    stats["seeds"] = stats["seeds"].astype(np.int64)
    return stats.sort_values(["metric"], key=lambda m: m.map(order), kind="stable").reset_index(drop=True)


def markdown(table: pd.DataFrame, runs: pd.DataFrame) -> str:
    """The comparison as one Markdown table: a row per method, scenario and protocol, a column
    per metric, cells ``mean ± std`` over the seeds (``(k)`` when only k runs have the value)."""
    run_counts = runs.groupby(GROUP, sort=False).size()
    wide = table.assign(cell=[_cell(r, run_counts[tuple(r[g] for g in GROUP)]) for _, r in table.iterrows()])
    wide = wide.pivot(index=GROUP, columns="metric", values="cell").reindex(columns=table["metric"].unique())
    wide = wide.reindex(run_counts.index).fillna("")
    head = [*GROUP, "runs", *wide.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, row in wide.iterrows():
        lines.append("| " + " | ".join([*map(_escape, key), str(run_counts[key]), *row]) + " |")
    return "\n".join(lines) + "\n"


def overall(table: pd.DataFrame) -> pd.DataFrame:
    """Per method, protocol and metric: the mean over scenarios of the per-scenario means, and
    how many scenarios have the metric (compare methods only where that count is the same)."""
    per = table.groupby(["method", "protocol", "metric"], sort=False)["mean"]
    return per.agg(["mean", "count"]).rename(columns={"count": "scenarios"}).reset_index()


def overall_markdown(summary: pd.DataFrame) -> str:
    """`overall` as a Markdown table: a row per method and protocol, a column per metric,
    cells ``mean (k scenarios)``."""
    cells = summary.assign(cell=[f"{m:.3f} ({k})" for m, k in zip(summary["mean"], summary["scenarios"])])
    wide = cells.pivot(index=["method", "protocol"], columns="metric", values="cell")
    wide = wide.reindex(columns=summary["metric"].unique()).fillna("")
    head = ["method", "protocol", *wide.columns]
    lines = ["Mean over scenarios (number of scenarios):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([*map(_escape, key), *row]) + " |" for key, row in wide.iterrows()]
    return "\n".join(lines) + "\n"


def _cell(row: pd.Series, runs: int) -> str:
    text = f"{row['mean']:.3f}" if np.isnan(row["std"]) else f"{row['mean']:.3f} ± {row['std']:.3f}"
    return text if row["seeds"] == runs else f"{text} ({row['seeds']})"


def _escape(text: str) -> str:
    """Markdown table cell text: a ``|`` would end the cell."""
    return str(text).replace("|", r"\|")


def bar_pictures(table: pd.DataFrame) -> dict[str, bytes]:
    """One PNG per metric, ``bars_<metric>.png``: mean per scenario (and protocol) and method,
    error bars one standard deviation."""
    parts = list(table.groupby("metric", sort=False))
    names = _file_names("bars", [str(metric) for metric, _ in parts])
    return {name: _picture(_bar_figure, part, metric) for name, (metric, part) in zip(names, parts)}


def _bar_figure(part: pd.DataFrame, metric: str) -> Figure:
    cases = (part["scenario"] + np.where(part["protocol"] != "", " " + part["protocol"], "")).to_numpy()
    labels, methods = list(dict.fromkeys(cases)), list(dict.fromkeys(part["method"]))
    width = 0.8 / len(methods)
    figure, (ax,) = agg_figure(max(6.0, 0.22 * len(labels) * len(methods) + 2), 4.5)
    for i, method in enumerate(methods):
        mine = part["method"].to_numpy() == method
        x = np.array([labels.index(c) for c in cases[mine]]) + (i - (len(methods) - 1) / 2) * width
        ax.bar(x, part["mean"][mine], width, yerr=part["std"][mine].fillna(0.0), label=method, capsize=2)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean over seeds, bars one standard deviation", loc="left")
    ax.legend(fontsize=7, ncols=max(1, len(methods) // 8))
    return figure


def curve_pictures(mlflow: Any, runs: pd.DataFrame) -> dict[str, bytes]:
    """Precision-recall curves, one PNG per scenario, protocol and label kind
    (``pr_<scenario>_<protocol>_<kind>.png``): a curve per method from the ranked_alerts.csv
    of its run with the lowest seed. Runs without that artifact or without labels are left out."""
    first = runs.drop_duplicates(GROUP, keep="first")  # runs are sorted by seed within a group
    curves: dict[tuple[str, str, str], dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in first.itertuples():
            for kind, curve in _run_curves(mlflow, run.run_id, Path(tmp)).items():
                curves.setdefault((run.scenario, run.protocol, kind), {})[run.method] = curve
    names = _file_names("pr", ["_".join(p for p in key if p) for key in curves])
    return {name: _picture(_curve_figure, methods, " ".join(p for p in key if p))
            for name, (key, methods) in zip(names, curves.items())}


def _run_curves(mlflow: Any, run_id: str, tmp: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Precision and recall per label kind of one run's ranked_alerts.csv; empty without it."""
    if RANKED_ALERTS not in {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}:
        return {}
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=RANKED_ALERTS, dst_path=str(tmp / run_id))
    frame = pd.read_csv(path, usecols=lambda c: c == "score" or c.startswith("label_"))
    Path(path).unlink()
    scores = frame["score"].to_numpy(np.float64)
    return {c.removeprefix("label_"): precision_recall_curve(scores, frame[c].to_numpy())
            for c in frame.columns if c != "score" and frame[c].nunique() == 2}


def _curve_figure(methods: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> Figure:
    figure, (ax,) = agg_figure(6, 4.5)
    for method, (precision, recall) in methods.items():
        keep = np.unique(np.linspace(0, len(recall) - 1, CURVE_POINTS).astype(np.int64))
        ax.step(np.r_[0.0, recall[keep]], np.r_[precision[0], precision[keep]], where="pre", label=method)
    label_precision_recall(ax, f"precision-recall, {title} (lowest seed)")
    ax.legend(fontsize=7)
    return figure


def _picture(draw: Any, *args: Any) -> bytes:
    """PNG bytes of ``draw(*args)``; text is drawn as it is (a ``$`` does not start math)."""
    with matplotlib.rc_context({"text.parse_math": False, **STYLE}):
        return png(draw(*args))


def _file_names(prefix: str, texts: list[str]) -> list[str]:
    """``<prefix>_<slug>.png`` per text; a slug that two texts share (``a b`` and ``a_b``) gets
    ``_2``, ``_3``, ... on its later uses, so no picture replaces another."""
    names: list[str] = []
    for text in texts:
        base = f"{prefix}_{_slug(text)}"
        name, k = f"{base}.png", 1
        while name in names:
            k += 1
            name = f"{base}_{k}.png"
        names.append(name)
    return names


def _slug(text: str) -> str:
    """``text`` as a file name part: runs of other characters than letters, digits, ``.``,
    ``-`` and ``_`` become ``_``."""
    return re.sub(r"[^\w.-]+", "_", text).strip("_")
