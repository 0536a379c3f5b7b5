"""The ``car`` command: ``car simulate --out FILE`` (more verbs follow the issues)."""

from __future__ import annotations

import argparse
import sys

from car.errors import CARError


def _simulate(args: argparse.Namespace) -> None:
    from car.data.simulate import write_simulation

    rows = write_simulation(args.out, n_alerts=args.n_alerts, seed=args.seed)
    print(f"wrote {rows} simulated alerts to {args.out}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``car`` console script; returns the exit code."""
    parser = argparse.ArgumentParser(prog="car", description="Collaborative alert ranking")
    verbs = parser.add_subparsers(dest="verb", required=True)
    sim = verbs.add_parser("simulate", help="write simulated enterprise alerts (with ground truth) as CSV")
    sim.add_argument("--out", required=True, help="CSV file to write")
    sim.add_argument("--n-alerts", type=int, default=20_000, help="approximate number of alerts")
    sim.add_argument("--seed", type=int, default=0)
    sim.set_defaults(func=_simulate)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except CARError as err:
        print(f"car: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
