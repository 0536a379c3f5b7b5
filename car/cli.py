"""The ``car`` command: ``car simulate`` writes simulated alerts, ``car rank`` ranks new alerts
with a saved model, ``car compare`` compares the MLflow runs of an experiment. Each verb is an
``_add_<verb>`` function (its options) and a ``_<verb>`` function (what it does)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from car.errors import CARError, DataError, os_error_line
from car.progress import quantity

log = logging.getLogger("car.cli")


def _simulate(args: argparse.Namespace) -> None:
    from car.data.simulate import write_simulation

    options = {k: getattr(args, k) for k in SIMULATOR_OPTIONS if getattr(args, k) is not None}
    rows = write_simulation(args.out, n_alerts=args.n_alerts, seed=args.seed, **options)
    print(f"wrote {rows} simulated alerts to {args.out}")


# The other simulator options (conf/data/enterprise_sim.yaml): type and help; unset = its default.
SIMULATOR_OPTIONS = {
    "n_hosts": (int, "hosts (default 120)"),
    "n_campaigns": (int, "planted attack templates (default 5)"),
    "attack_fraction": (float, "approximate share of attack alerts (default 0.03)"),
    "days": (int, "length of the period in days (default 14)"),
    "start": (str, "first day, ISO 8601 UTC (default 2024-03-04)"),
    "noise": (float, "chance that an attack alert's attribute is redrawn as benign (default 0.1)"),
    "pattern_length": (int, "longest possible campaign in steps (default 6)"),
    "gap_minutes": (float, "median gap between campaign steps (default 30)"),
}


def _add_simulate(verbs: argparse._SubParsersAction) -> None:
    sim = verbs.add_parser("simulate", help="write simulated enterprise alerts (with ground truth) as CSV")
    sim.add_argument("--out", required=True, help="CSV file to write")
    sim.add_argument("--n-alerts", type=int, default=20_000, help="number of alerts (default 20000)")
    sim.add_argument("--seed", type=int, default=0, help="same seed, same alerts (default 0)")
    for key, (kind, text) in SIMULATOR_OPTIONS.items():
        sim.add_argument("--" + key.replace("_", "-"), type=kind, help=text)
    sim.set_defaults(func=_simulate)


def _rank(args: argparse.Namespace) -> None:
    from car.eval.metrics import evaluate_alerts
    from car.eval.patterns import evaluate_patterns
    from car.models.saved import SavedModel
    from car.outputs.files import write_json
    from car.pipeline import set_threads, write_outputs

    set_threads(args.threads)  # as train.py's ``threads``: torch would take every core
    saved = SavedModel.load(args.model)
    if not Path(args.input).exists():
        raise DataError(f"--input {args.input}: no such file or folder; give the alerts to rank")
    table = saved.read(args.input, args.data)
    log.info("ranking %s of %s with the saved model", quantity(len(table), "alert"), args.input)
    online = saved.rank(table.unlabeled())
    log.info("writing the outputs to %s", args.out)
    metrics = evaluate_alerts(table, online.ranking.scores) if table.label_kinds else {}
    metrics |= evaluate_patterns(table, online.ranking)  # as a training run (car/pipeline.py); no stage_map here
    out = Path(args.out)
    write_outputs(out, table, online.ranking, None, metrics, saved.car.name)
    write_json(online.unseen.summary(), out / "unseen_values.json")
    if args.save_model:
        online.model.save(out / "model")
    print(f"ranked {quantity(len(table), 'alert')}, rejected {len(table.rejected):,}; outputs in {out}")


def _add_rank(verbs: argparse._SubParsersAction) -> None:
    rank = verbs.add_parser(
        "rank", help="rank new alerts with a saved model, its counts grown by them (no re-training)",
        description="Rank new alerts with the model a training run saved in <run>/model; writes the files "
                    "of a training run plus unseen_values.json into OUT, and nothing else.",
    )
    rank.add_argument("--model", required=True, help="saved model folder, e.g. outputs/enterprise/<time>/model")
    rank.add_argument("--input", required=True, help="alerts in the format the model was fitted on (file or folder; "
                                                     "for data=enterprise_sim a `car simulate` CSV)")
    rank.add_argument("--out", required=True, help="folder for ranked_alerts.csv and the other outputs")
    rank.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                      help="override a data.* option of the model's input format, e.g. labels=null (repeatable)")
    rank.add_argument("--threads", type=int, default=1,
                      help="torch intra-op threads, as train.py's threads (default 1)")
    rank.add_argument("--save-model", action="store_true",
                      help="also write the model with the grown counts to OUT/model, to rank the next alerts with")
    rank.set_defaults(func=_rank)


def _compare(args: argparse.Namespace) -> None:
    from car.eval.compare import DEFAULT_METRICS, compare
    from car.outputs.tracking import tracking_uri

    uri = tracking_uri(args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))
    out = Path(args.out or Path("outputs") / "compare" / args.experiment)
    comparison, run_id = compare(args.experiment, uri, out, tuple(args.metrics or DEFAULT_METRICS), not args.no_curves)
    print(out.joinpath("comparison.md").read_text(encoding="utf-8"), end="")
    for note in (comparison.unnamed, comparison.mixed, comparison.unfinished):
        if note:
            print(note)
    replaced = (f" ({quantity(comparison.replaced, 'earlier run')} replaced by re-runs left out)"
                if comparison.replaced else "")
    logged = (f"logged as run {run_id} of experiment {args.experiment}" if run_id else
              f"not logged to MLflow: the store cannot be written ({comparison.unlogged})")
    print(f"compared {quantity(len(comparison.runs), 'run')}{replaced}; wrote {len(comparison.files)} files to {out}, {logged}")


def _add_compare(verbs: argparse._SubParsersAction) -> None:
    cmp = verbs.add_parser(
        "compare", help="compare the MLflow runs of an experiment: methods x scenarios, mean and spread over seeds",
        description="Read the finished runs of an MLflow experiment (e.g. python train.py -m +experiment=ait_ads), "
                    "print a table of each metric's mean and standard deviation over seeds per method, scenario "
                    "and protocol, write it as CSV and Markdown with PNG plots, and log them as a summary run.",
    )
    cmp.add_argument("--experiment", required=True, help="MLflow experiment name, e.g. ait_ads")
    cmp.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else the repository's mlflow.db)")
    cmp.add_argument("--out", help="folder for the table and plots (default: outputs/compare/<experiment>)")
    cmp.add_argument("--metrics", nargs="+", metavar="GLOB",
                     help="metrics to compare, glob patterns such as 'strict/*/ap' (default: AP raw and grouped, "
                          "workload to 95%% recall raw and grouped, patterns/*)")
    cmp.add_argument("--no-curves", action="store_true",
                     help="skip the precision-recall plots (they read every compared run's ranked_alerts.csv)")
    cmp.set_defaults(func=_compare)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``car`` console script; returns the exit code."""
    parser = argparse.ArgumentParser(prog="car", description="Collaborative alert ranking")
    verbs = parser.add_subparsers(dest="verb", required=True)
    for add_verb in (_add_simulate, _add_rank, _add_compare):
        add_verb(verbs)
    # Without a metavar a missing verb is reported as "required: verb", the internal dest name.
    verbs.metavar = "{" + ",".join(verbs.choices) + "}"
    args = parser.parse_args(argv)
    # INFO lines of the package (e.g. the values a model never counted) on stderr.
    logging.basicConfig(level=logging.INFO, format="car: %(message)s")
    try:
        args.func(args)
    except CARError as err:
        print(f"car: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"car: error: {os_error_line(err)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
