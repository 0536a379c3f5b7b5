"""Ablations and baselines of CAR on the simulator and on AIT-ADS (protocols P1 and P2).

Every variant is built from the Hydra configs (conf/) with one line of overrides, fitted
on the unlabeled alerts (plus unlabeled history under P2) and scored with
``evaluate_alerts``. Prints one Markdown table per data set and writes every metric to JSON.

Reproduce (from the repository root; the runs of docs/results.md; torch on one thread):

    export OMP_NUM_THREADS=1
    .venv/bin/python experiments/ablations.py --scenarios russellmitchell --protocols p1 p2 --seeds 0 \
        --out experiments/results/ablations_rm_sim.json
    .venv/bin/python experiments/ablations.py --scenarios shaw --protocols p1 p2 --seeds \
        --out experiments/results/ablations_shaw.json
    .venv/bin/python experiments/ablations.py --scenarios fox harrison --protocols p1 --seeds \
        --variants rarity car --out experiments/results/ablations_large_fh.json
    .venv/bin/python experiments/ablations.py --scenarios wheeler --protocols p1 --seeds \
        --variants rarity car --out experiments/results/ablations_large_w.json
    .venv/bin/python experiments/ablations.py --scenarios fox harrison wheeler --protocols p2 --seeds \
        --variants car rarity rarity-history --out experiments/results/ablations_large_p2.json

Sensitivity of the ranking weights (session 4, docs/method.md), one variant per changed value:

    .venv/bin/python experiments/ablations.py --scenarios russellmitchell shaw fox harrison wheeler \
        --protocols p1 p2 --seeds 0 1 2 --variants car rarity rarity-history \
        --also gamma0.03='model.ranking.gamma=0.03' beta1='model.ranking.beta=1.0' \
        nb20='model.ranking.neighbours=20' lam0.5='model.ranking.lam=0.5' \
        --out experiments/results/sensitivity_session4.json

P2 with other histories than benchmark.md's (session 4, docs/results.md):

    .venv/bin/python experiments/ablations.py --scenarios russellmitchell shaw --protocols p2 --seeds \
        --history fox --variants car rarity-history --also rarity-from-both='model.ranking.rarity_from=both' \
        --out experiments/results/p2_history_fox.json
    # likewise --history wheeler (russellmitchell, harrison), --history harrison (shaw, wheeler),
    # --history russellmitchell (fox)

The session-5 tables of docs/results.md (all variants, both protocols, simulator seeds 0-2):

    .venv/bin/python experiments/ablations.py --scenarios russellmitchell shaw fox harrison wheeler \
        --protocols p1 p2 --seeds 0 1 2 --variants car car-prior-only car-no-patterns car-no-similarity \
        rarity rarity-bursts rarity-history --also from-history='model.ranking.rarity_from=history' \
        gamma0.1='model.ranking.gamma=0.1' neighbours3='model.ranking.neighbours=3' beta0.1='model.ranking.beta=0.1' \
        type-prior-gamma0.1='model.ranking.gamma=0.1 model.ranking.value_surprise=false model.ranking.context_window=null' \
        --out experiments/results/ablations_session5.json

Session 6 (docs/results.md, docs/method.md): the edge-preserving similarity and P2 with patterns
that hold in the batch; the weight sweep's commands are in the ``args`` of
``experiments/results/weights_session6_*.json``. The bandwidth runs need the code of commit
3d021ae: its option ``similarity_bandwidth`` has since been replaced by ``surprise_bandwidth``.

    .venv/bin/python experiments/ablations.py --scenarios russellmitchell shaw fox harrison wheeler \
        --protocols p1 --seeds 0 1 2 --variants car car-no-patterns \
        --also bandwidth0.05='model.ranking.similarity_bandwidth=0.05' \
        no-patterns-bandwidth0.05='model.ranking.alpha=0 model.ranking.similarity_bandwidth=0.05' \
        --out experiments/results/bandwidth_session6.json   # and the same at 0.1
    .venv/bin/python experiments/ablations.py --scenarios russellmitchell shaw fox harrison wheeler \
        --protocols p2 --seeds --variants car --out experiments/results/p2_session6.json

One call does the same for the two development scenarios and the simulator:
``--scenarios russellmitchell shaw --protocols p1 p2 --seeds 0`` (the defaults).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from car.alerts import AlertTable
from car.eval.metrics import evaluate_alerts
from car.eval.patterns import evaluate_patterns
from car.models.base import Ranking
from car.pipeline import build_model, configure, load_inputs

REPO = Path(__file__).resolve().parents[1]
AIT = REPO.parent / "shared" / "data" / "ait-ads"
SCENARIOS = ["fox", "harrison", "russellmitchell", "shaw", "wheeler"]
HISTORY = {"shaw": "russellmitchell"}  # P2 history: shaw, or russellmitchell for shaw
VARIANTS = {
    "car": ["model=car"],
    "car-temporal-only": ["model=car", "model.content.enabled=false"],
    "car-dirichlet": ["model=car", "model.temporal.prior=dirichlet"],
    "car-ngram2": ["model=car", "model.temporal.prior=ngram", "model.temporal.order=2"],
    "car-no-prior": ["model=car", "model.ranking.prior=false"],
    "car-no-patterns": ["model=car", "model.ranking.alpha=0"],
    "car-no-similarity": ["model=car", "model.ranking.beta=0"],
    "car-no-address": ["model=car", "model.ranking.address_window=null"],  # no links through shared addresses
    "car-alert-rarity": ["model=car", "model.ranking.burst_gap=null"],  # the prior counts every alert
    "car-prior-only": ["model=car", "model.ranking.alpha=0", "model.ranking.beta=0"],  # the prior q alone
    "hpyp": ["model=hpyp"],
    "ngram": ["model=ngram"],
    "ape": ["model=ape"],
    "rarity": ["model=rarity"],
    "rarity-bursts": ["model=rarity_bursts"],
    "rarity-history": ["model=rarity", "model.counts_from=history"],  # P2 only
}
HISTORY_ONLY = {"rarity-history"}


def filtered_copy(path: Path, hosts: list[str], folder: Path) -> Path:
    """A copy of the AIT-ADS file ``path`` in ``folder`` without the alerts of ``hosts``."""
    out = folder / path.name
    if not out.exists():
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame[~frame["host"].isin(hosts)].to_csv(out, index=False)
    return out


def datasets(args: argparse.Namespace, folder: Path | None = None) -> list[tuple[str, list[str], bool]]:
    """(name, data overrides, has history) for every data set asked for; absent files skipped.
    With ``--without-hosts`` the AIT-ADS files (history too) are filtered copies in ``folder``."""
    if args.without_hosts and folder is None:
        folder = Path(tempfile.mkdtemp(prefix="ablations-"))
    drop = (lambda path: filtered_copy(path, args.without_hosts, folder)) if args.without_hosts else (lambda path: path)
    tag = "".join(f"-without-{host}" for host in args.without_hosts)
    sim = ["data=enterprise_sim", f"data.n_alerts={args.sim_alerts}", f"data.n_hosts={args.sim_hosts}",
           *(f"data.{option}" for option in args.sim_options)]
    out = [(f"sim-seed{s}", [*sim, f"seed={s}"], False) for s in args.seeds]
    for scenario in args.scenarios:
        path = AIT / f"{scenario}_alerts.csv.gz"
        if not path.exists():
            print(f"note: {path} is absent, skipping {scenario}")
            continue
        if "p1" in args.protocols:
            out.append((f"{scenario}{tag}-p1", ["data=ait_ads", f"data.path={drop(path)}"], False))
        if "p2" in args.protocols:
            if args.history == scenario:
                print(f"note: {scenario} is its own --history, skipping its P2")
                continue
            history = AIT / f"{args.history or HISTORY.get(scenario, 'shaw')}_alerts.csv.gz"
            if not history.exists():
                print(f"note: history {history} is absent, skipping {scenario} P2")
                continue
            name = f"{scenario}{tag}-p2" + (f"-history-{args.history}" if args.history else "")
            out.append((name, ["data=ait_ads", f"data.path={drop(path)}", f"data.history={drop(history)}"], True))
    return out


def config(overrides: list[str]) -> DictConfig:
    """The composed train config with ``overrides``, tracking off."""
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return compose("train", overrides=["logger=none", *overrides])


def data_set(data_overrides: list[str], cache: dict) -> tuple[AlertTable, AlertTable | None]:
    """The labelled alerts and the history (or None) of one data set, loaded once: ``cache``
    keeps the last one."""
    key = tuple(data_overrides)
    if key not in cache:
        cache.clear()  # keep one data set in memory
        cfg = config(data_overrides)
        configure(cfg.seed, cfg.threads)
        cache[key] = load_inputs(cfg.data)
    return cache[key]


def fit_rank(data_overrides: list[str], variant: list[str], cache: dict) -> tuple[AlertTable, Ranking, float]:
    """Fit one variant on one data set's unlabeled alerts (and history) and rank them: the
    labelled table, the ranking and the fit+rank seconds. ``cache`` as in `data_set`."""
    cfg = config(data_overrides + variant)
    table, history = data_set(data_overrides, cache)
    configure(cfg.seed, 1)
    model = build_model(cfg.model)
    start = time.perf_counter()
    # The Trainer options of conf/trainer, as train.py uses them (the max_steps cap included).
    trainer = {**OmegaConf.to_container(cfg.trainer, resolve=True), "enable_progress_bar": False, "logger": False}
    ranking = model.fit(table.unlabeled(), history.unlabeled() if history is not None else None,
                        trainer=trainer).rank(table.unlabeled())
    return table, ranking, time.perf_counter() - start


def run(data_overrides: list[str], variant: list[str], cache: dict) -> dict[str, float]:
    """Fit and rank one variant on one data set; alert and pattern metrics (AIT-ADS step coverage,
    simulator campaigns) plus fit+rank seconds."""
    table, ranking, seconds = fit_rank(data_overrides, variant, cache)
    return {**evaluate_alerts(table, ranking.scores), **evaluate_patterns(table, ranking), "seconds": seconds,
            "n_alerts": len(table)}


def markdown(name: str, rows: dict[str, dict[str, float]]) -> str:
    """One data set's table: per variant AP raw and grouped and workload to 95% per label kind, seconds."""
    kinds = sorted({k.split("/")[0] for m in rows.values() for k in m if k.endswith("/raw/ap")})
    head = ["variant"] + [f"{k} {c}" for k in kinds for c in ("AP raw", "AP grouped", "wl@95 raw")] + ["fit+rank s"]
    lines = [f"### {name}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for variant, m in rows.items():
        cells = [f"{m[f'{k}/raw/ap']:.3f} | {m[f'{k}/grouped/ap']:.3f} | {m[f'{k}/raw/workload_at_95']:.3f}" for k in kinds]
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {m['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every variant on every data set asked for; print the tables, write --out as it goes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="*", default=["russellmitchell", "shaw"], choices=SCENARIOS)
    parser.add_argument("--protocols", nargs="*", default=["p1", "p2"], choices=["p1", "p2"])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0], help="simulator seeds (none: skip it)")
    parser.add_argument("--sim-alerts", type=int, default=20000, help="simulated alerts per seed")
    parser.add_argument("--sim-hosts", type=int, default=120, help="simulated hosts (entities)")
    parser.add_argument("--sim-options", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more simulator options (conf/data/enterprise_sim.yaml), e.g. noise=0.3")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--history", choices=SCENARIOS, default=None,
                        help="P2 history for every scenario (default: shaw, russellmitchell for shaw)")
    parser.add_argument("--without-hosts", nargs="*", default=[], metavar="HOST",
                        help="leave these hosts' alerts out of every AIT-ADS file, e.g. intranet_server (the dirb flood)")
    parser.add_argument("--also", nargs="*", default=[], metavar="NAME=OVERRIDES",
                        help="more CAR variants, e.g. gamma0.03='model.ranking.gamma=0.03' (space-separated overrides)")
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "ablations.json")
    args = parser.parse_args()
    variants = {name: VARIANTS[name] for name in args.variants}
    for spec in args.also:
        name, _, overrides = spec.partition("=")
        if not name or not overrides:
            parser.error(f"--also {spec!r}: write NAME=OVERRIDES, e.g. gamma0.03='model.ranking.gamma=0.03'")
        variants[name] = ["model=car", *overrides.split()]
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    results: dict[str, dict[str, dict[str, float]]] = {}
    cache: dict = {}
    folder = tempfile.TemporaryDirectory(prefix="ablations-")  # filtered copies (--without-hosts)
    for name, data_overrides, has_history in datasets(args, Path(folder.name)):
        results[name] = {}
        for variant, overrides in variants.items():
            if variant in HISTORY_ONLY and not has_history:
                continue
            results[name][variant] = run(data_overrides, overrides, cache)
            print(f"  {name} {variant}: {results[name][variant]['seconds']:.1f} s", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                            "results": results}, indent=1))
        print(markdown(name, results[name]), flush=True)


if __name__ == "__main__":
    main()
