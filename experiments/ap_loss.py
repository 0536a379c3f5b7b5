"""Where a ranking loses its average precision, per group of attack alerts.

AP is the mean, over the attack alerts, of the precision of the ranking down to each one
(car.eval.precision_at_positives). So a group of attacks (an alert type, or a label column
such as the simulator's ``stage``) loses the sum of its ``1 - precision`` divided by all
attacks, and the losses of all groups add up to ``1 - AP``. Each variant of
experiments/ablations.py is fitted on the unlabeled alerts and broken down this way.

Reproduce the session-13 tables of docs/results.md (torch on one thread):

    export OMP_NUM_THREADS=1
    .venv/bin/python experiments/ap_loss.py --seed 0 --variants car-prior-only car
    .venv/bin/python experiments/ap_loss.py --seed 1 --variants car-prior-only car
    .venv/bin/python experiments/ap_loss.py --seed 0 --by stage      # and --seed 1
    .venv/bin/python experiments/ap_loss.py --seed 0 --by steps-here # and --seeds 1, 3
    .venv/bin/python experiments/ap_loss.py --scenario shaw --variants car-prior-only car
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

import ablations  # experiments/, next to this script
from car.alerts import AlertTable
from car.eval import precision_at_positives


def data_overrides(args: argparse.Namespace) -> list[str]:
    """The Hydra overrides of the data set asked for: an AIT-ADS scenario, else a simulator seed."""
    if args.scenario:
        path = ablations.AIT / f"{args.scenario}_alerts.csv.gz"
        if not path.exists():
            raise SystemExit(f"ap_loss.py: {path} is absent; AIT-ADS scenarios are read from ../shared/data/ait-ads")
        return ["data=ait_ads", f"data.path={path}"]
    return ["data=enterprise_sim", f"data.n_alerts={args.sim_alerts}", f"data.n_hosts={args.sim_hosts}",
            f"seed={args.seed}"]


def group_of(table: AlertTable, by: str) -> np.ndarray:
    """(n,) the group of each alert: an alert column (``type``, ``entity``...), a label column, or
    ``steps-here``: how many alert types of the attack's campaign its entity shows (1, 2, 3+;
    needs the simulator's ``campaign`` label)."""
    if by == "steps-here" and table.labels is not None and "campaign" in table.labels.columns:
        keys = pd.DataFrame({"campaign": table.labels["campaign"].to_numpy(), "entity": table.alerts["entity"].to_numpy(),
                             "type": table.alerts["type"].to_numpy()})
        steps = keys.groupby(["campaign", "entity"], observed=True)["type"].transform("nunique").to_numpy()
        return np.where(steps >= 3, "3+", steps.astype(str))
    for frame in (table.alerts, table.labels):
        if frame is not None and by in frame.columns:
            return frame[by].astype(str).to_numpy()
    columns = [*table.alerts.columns, *([] if table.labels is None else table.labels.columns)]
    raise SystemExit(f"ap_loss.py: --by {by!r} is not a column; use one of {', '.join(map(str, columns))}"
                     + (" or steps-here" if "campaign" in columns else ""))


def loss_table(groups: np.ndarray, labels: np.ndarray, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per group of attacks (rows, most lost under the last variant first): ``attacks``, and per
    variant its mean ``precision`` and the AP it ``lost``; the last row, ``all``, holds the AP."""
    attack = labels == 1
    rows = pd.DataFrame({"group": groups[attack]})
    for name, s in scores.items():
        rows[f"{name} precision"] = precision_at_positives(s, labels)[attack]
        rows[f"{name} lost"] = (1.0 - rows[f"{name} precision"]) / attack.sum()
    named = {"attacks": ("group", "size")}
    for name in scores:
        named[f"{name} precision"] = (f"{name} precision", "mean")
        named[f"{name} lost"] = (f"{name} lost", "sum")
    table = rows.groupby("group").agg(**named).sort_values(f"{list(scores)[-1]} lost", ascending=False)
    total = {"attacks": int(attack.sum())}
    for name in scores:
        total |= {f"{name} precision": rows[f"{name} precision"].mean(), f"{name} lost": rows[f"{name} lost"].sum()}
    return pd.concat([table, pd.DataFrame(total, index=["all"])])


def markdown(table: pd.DataFrame) -> str:
    """`loss_table` as a Markdown table."""
    head = ["group", *table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for group, row in table.iterrows():
        cells = [f"{int(v)}" if c == "attacks" else f"{v:.3f}" for c, v in row.items()]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Fit the variants on one data set and print (and with --out write) its AP-loss table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="simulator seed (without --scenario)")
    parser.add_argument("--sim-alerts", type=int, default=20000)
    parser.add_argument("--sim-hosts", type=int, default=120)
    parser.add_argument("--scenario", choices=ablations.SCENARIOS, default=None, help="an AIT-ADS scenario (P1)")
    parser.add_argument("--label", default=None, help="label kind (default: the data's first: attack, strict)")
    parser.add_argument("--by", default="type", help="alert or label column to group attacks by, e.g. stage; or steps-here")
    parser.add_argument("--variants", nargs="+", default=["car-prior-only", "car"], choices=list(ablations.VARIANTS))
    parser.add_argument("--out", type=Path, default=None, help="also write the table as JSON here")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    overrides, cache = data_overrides(args), {}
    table, _ = ablations.data_set(overrides, cache)
    kinds = table.label_kinds
    if not kinds or (args.label is not None and args.label not in kinds):
        raise SystemExit(f"ap_loss.py: --label {args.label!r}: the data's label kinds are {kinds or 'none'}")
    groups, labels = group_of(table, args.by), table.label(args.label or kinds[0])  # checked before any fit
    scores = {variant: ablations.fit_rank(overrides, ablations.VARIANTS[variant], cache)[1].scores
              for variant in args.variants}
    result = loss_table(groups, labels, scores)
    print(markdown(result), flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                        "table": result.reset_index(names="group").to_dict("records")}, indent=1))


if __name__ == "__main__":
    main()
