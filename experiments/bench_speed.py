"""End-to-end speed and memory of CAR against the rarity floor (performance issue #5).

For each case (an AIT-ADS scenario, the five scenarios as one table, or the enterprise
simulator at a given size) a fresh subprocess runs the pipeline's stages on the same input
with ``model=rarity`` (the floor: reading, ranking by a frequency table, writing) and then
with ``model=car``; on the cases of at most 100,000 alerts the two take turns ``--repeat``
times (default 3) and the median run of each is reported:

    load   car.pipeline.load_inputs            (the simulator: generating the alerts)
    fit    model.fit(table.unlabeled(), ...)   (CAR: encode, tree, tuples, Lightning training)
    rank   model.rank(table.unlabeled())       (CAR: surprise, patterns, similarity, solve)
    eval   car.eval.metrics.evaluate_alerts    (what the pipeline does before writing)
    write  car.pipeline.write_outputs          (the same CSVs, metrics.json and graph, into a temp dir)

Each model loads its own copy of the input, so both totals are end to end. Peak resident
memory is per stage: the kernel's high-water mark (VmHWM) is reset before each stage via
``/proc/self/clear_refs`` (a sampling thread reading VmRSS every 20 ms is the fallback);
a model's peak is the largest of its stages. Inside CAR, sub-stages are timed by wrapping
the functions ``car.models`` calls (no profiler overhead). Models are built from the Hydra
configs exactly as ``train.py`` does (``logger=none``; trainer = conf/trainer/cpu.yaml
without the progress bar). Torch and BLAS run on one thread. Before the recorded runs, each
model runs once on 2,000 simulated alerts (not recorded), so that neither pays first-use
imports and code paths (for CAR, Lightning's loops and autograd's first backward).

Reproduce (from the repository root):

    export OMP_NUM_THREADS=1 MLFLOW_DISABLE_TELEMETRY=true
    .venv/bin/python experiments/bench_speed.py                      # every case
    .venv/bin/python experiments/bench_speed.py --quick              # sim-10k, sim-100k, russellmitchell
    .venv/bin/python experiments/bench_speed.py --cases shaw sim-1m --out /tmp/b.json
    .venv/bin/python experiments/bench_speed.py --cases fox --profile experiments/results/profile

``--profile DIR`` runs CAR's stages under cProfile instead (times inflated by the
profiler; not written to the table) and writes ``DIR/<case>_<stage>.prof`` plus the top
functions by own time and by cumulative time to ``DIR/<case>.txt``.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import io
import json
import logging
import math
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

REPO = Path(__file__).resolve().parents[1]
AIT = REPO.parent / "shared" / "data" / "ait-ads"
SCENARIOS = ["fox", "harrison", "russellmitchell", "shaw", "wheeler"]
SIM_SIZES = {"sim-10k": 10_000, "sim-100k": 100_000, "sim-1m": 1_000_000, "sim-3m": 3_000_000}
# The load case of the reliability issue: one million alerts over 100,000 hosts (entities).
SIM_ENTITIES = {"sim-1m-100k-hosts": (1_000_000, 100_000)}
CASES = ["sim-10k", "russellmitchell", "shaw", "sim-100k", "fox", "harrison", "wheeler", "sim-1m", "ait-all", "sim-3m",
         *SIM_ENTITIES]
QUICK = ["sim-10k", "russellmitchell", "sim-100k"]
# Cases of at most 100,000 alerts, where a few seconds of noise from the machine would swing the
# ratio to rarity: each model runs --repeat times and the median run is reported.
REPEATED = ["sim-10k", "russellmitchell", "shaw", "sim-100k"]
STAGES = ["load", "fit", "rank", "eval", "write"]
MODELS = ["rarity", "car"]


def data_overrides(case: str) -> list[str]:
    """Hydra overrides of the data group for a case."""
    if case in SIM_SIZES:
        return ["data=enterprise_sim", f"data.n_alerts={SIM_SIZES[case]}"]
    if case in SIM_ENTITIES:
        alerts, hosts = SIM_ENTITIES[case]
        return ["data=enterprise_sim", f"data.n_alerts={alerts}", f"data.n_hosts={hosts}"]
    if case == "ait-all":
        return ["data=ait_ads", f"data.path={AIT}"]
    if case in SCENARIOS:
        return ["data=ait_ads", f"data.path={AIT / f'{case}_alerts.csv.gz'}"]
    raise SystemExit(f"unknown case {case!r}; cases: {', '.join(CASES)}")


# ----------------------------------------------------------------------------- memory


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class PeakRSS:
    """Peak resident set size of this process over a ``with`` block, in bytes."""

    def __init__(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current VmRSS
            self.method = "VmHWM"
        except OSError:
            self.method = "sampled VmRSS"

    def __enter__(self) -> PeakRSS:
        self.start = _status_kb("VmRSS") * 1024
        self.peak = self.start
        if self.method == "VmHWM":
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        else:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _status_kb("VmRSS") * 1024)

    def __exit__(self, *exc: Any) -> None:
        if self.method == "VmHWM":
            self.peak = max(self.peak, _status_kb("VmHWM") * 1024)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _status_kb("VmRSS") * 1024)
        self.end = _status_kb("VmRSS") * 1024


# ----------------------------------------------------------------------------- sub-stage timers

SUB: dict[str, list[float]] = {}


def _timed(name: str, fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            entry = SUB.setdefault(name, [0.0, 0])
            entry[0] += time.perf_counter() - start
            entry[1] += 1
    return wrapper


def instrument() -> None:
    """Wrap the functions CAR's fit and rank call, in the namespaces they are called from."""
    import lightning as L

    import car.data.datamodule as dm
    import car.models.car as car_facade
    import car.models.car_module as cm
    import car.pipeline as pipeline
    from car.content.ape import EntityEmbedding
    from car.temporal.context_tree import ContextTree
    from car.temporal.pitman_yor import PitmanYorTree

    for module, names, prefix in [
        (car_facade, ["encode_alerts", "to_ranking", "attack_graph"], "car."),
        (dm, ["unique_tuples"], "datamodule."),
        (cm, ["find_patterns", "pattern_occurrences", "runs_to_alerts", "knn_similarity", "build_graph",
              "collaborative_rank", "alert_prior", "entity_context", "prior_scores"], "rank."),
        (pipeline, ["ranked_alerts", "ranked_patterns", "label_patterns", "write_csv", "write_json",
                    "write_graphml"], "write."),
    ]:
        for name in names:
            if hasattr(module, name):
                setattr(module, name, _timed(prefix + name, getattr(module, name)))
    build = ContextTree.build
    ContextTree.build = _timed("datamodule.ContextTree.build", build)  # plain function on the class: no binding
    ContextTree.chain_counts = _timed("train.chain_counts", ContextTree.chain_counts)
    dm.AlertDataModule.__init__ = _timed("car.AlertDataModule", dm.AlertDataModule.__init__)
    L.Trainer.fit = _timed("car.Trainer.fit", L.Trainer.fit)
    L.Trainer.predict = _timed("car.Trainer.predict", L.Trainer.predict)
    cm.CARModule.training_step = _timed("train.training_step", cm.CARModule.training_step)
    PitmanYorTree.surprise = _timed("rank.temporal_surprise", PitmanYorTree.surprise)
    EntityEmbedding.anomaly = _timed("rank.content_anomaly", EntityEmbedding.anomaly)


# ----------------------------------------------------------------------------- worker


def run_model(case: str, model_name: str, profile_dir: Path | None = None, extra: list[str] = (),
              data: list[str] | None = None) -> dict[str, Any]:
    """One end-to-end run (load, fit, rank, eval, write) of one model on one case."""
    from omegaconf import OmegaConf

    from ablations import config  # experiments/, next to this script
    from car.eval.metrics import evaluate_alerts
    from car.pipeline import build_model, configure, load_inputs, write_outputs

    cfg = config([*(data if data is not None else data_overrides(case)), f"model={model_name}", *extra])
    configure(cfg.seed, cfg.threads)
    model = build_model(cfg.model)
    trainer = {**OmegaConf.to_container(cfg.trainer, resolve=True), "logger": False, "enable_progress_bar": False}
    SUB.clear()
    stages: dict[str, dict[str, float]] = {}
    tmp = tempfile.TemporaryDirectory(prefix="bench_speed_")
    profiles: dict[str, cProfile.Profile] = {}

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        gc.collect()
        prof = cProfile.Profile() if profile_dir is not None else None
        with PeakRSS() as mem:
            start = time.perf_counter()
            cpu = time.process_time()
            if prof is not None:
                prof.enable()
            out = fn()
            if prof is not None:
                prof.disable()
                profiles[name] = prof
            seconds = time.perf_counter() - start
            cpu = time.process_time() - cpu
        stages[name] = {"seconds": seconds, "cpu_seconds": cpu, "peak_rss": mem.peak, "rss_before": mem.start,
                        "rss_after": mem.end, "rss_method": mem.method}
        return out

    table, history = stage("load", lambda: load_inputs(cfg.data))
    stage("fit", lambda: model.fit(table.unlabeled(), history.unlabeled() if history is not None else None,
                                   trainer=trainer))
    ranking = stage("rank", lambda: model.rank(table.unlabeled()))
    metrics = stage("eval", lambda: evaluate_alerts(table, ranking.scores) if table.label_kinds else {})
    files = stage("write", lambda: write_outputs(Path(tmp.name), table, ranking, history, metrics))
    sizes = {f.name: f.stat().st_size for f in files}
    result = {
        "model": model_name,
        "n_alerts": len(table),
        "n_rejected": len(table.rejected),
        "stages": stages,
        "total_s": sum(s["seconds"] for s in stages.values()),
        "peak_rss": max(s["peak_rss"] for s in stages.values()),
        "substages": {k: {"seconds": v[0], "calls": v[1]} for k, v in sorted(SUB.items())},
        "files": sizes,
        "n_patterns": int(len(ranking.patterns)),
        "ap": {k: v for k, v in metrics.items() if k.endswith("/raw/ap")},
    }
    if model_name == "car" and hasattr(model, "data") and model.data is not None:
        result["n_runs"] = int(len(model.data.encoded.symbols))
        result["n_tuples"] = int(len(model.data.tuples))
        result["n_types"] = int(model.data.encoded.n_symbols)
        result["steps_per_epoch"] = int(model.data.steps_per_epoch)
    if profile_dir is not None:
        _write_profiles(profile_dir, case, model_name, profiles, stages)
    tmp.cleanup()
    return result


def _write_profiles(out: Path, case: str, model_name: str, profiles: dict[str, cProfile.Profile],
                    stages: dict[str, dict[str, float]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    for name, prof in profiles.items():
        prof.dump_stats(out / f"{case}_{model_name}_{name}.prof")
        text.write(f"\n=== {case} {model_name} {name}: {stages[name]['seconds']:.2f} s under cProfile ===\n")
        for key in ("tottime", "cumulative"):
            stats = pstats.Stats(prof, stream=text)
            stats.strip_dirs().sort_stats(key).print_stats(25)
    (out / f"{case}_{model_name}.txt").write_text(text.getvalue())


def worker(case: str, out: Path, models: list[str], profile_dir: Path | None, car_overrides: list[str],
           repeat: int) -> None:
    """The subprocess of one case: warm up, run ``models`` in turn ``repeat`` times, write the
    median runs as JSON to ``out`` (after every run, so a timeout keeps what finished)."""
    import torch

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    instrument()
    # Warm-up (not recorded): first-use imports and code paths of loading, training, ranking and
    # writing, so that neither model's stages pay them.
    import car.data.ait_ads  # noqa: F401
    for name in models:
        run_model("warm-up", name, data=["data=enterprise_sim", "data.n_alerts=2000"])
    result: dict[str, Any] = {"case": case, "models": {}, "car_overrides": car_overrides, "repeat": repeat}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in models}
    for _ in range(repeat):  # the models in turn, so that a slow spell of the machine hits both
        for name in models:
            runs[name].append(run_model(case, name, profile_dir, car_overrides if name == "car" else []))
            gc.collect()
            result["models"][name] = _median_run(runs[name])
            out.write_text(json.dumps(result, indent=1))
    result["process_peak_rss"] = _status_kb("VmHWM") * 1024  # since the last reset: the last stage
    out.write_text(json.dumps(result, indent=1))


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median total time (the lower one of an even count), with every run's total."""
    median = sorted(runs, key=lambda r: r["total_s"])[(len(runs) - 1) // 2]
    return {**median, "totals_s": [r["total_s"] for r in runs]}


# ----------------------------------------------------------------------------- driver


def run_case(case: str, models: list[str], timeout: float, profile_dir: Path | None,
             car_overrides: list[str], repeat: int = 1) -> dict[str, Any]:
    """Run one case in a fresh `worker` subprocess; its result with wall time, load averages and
    ``error``: the last line of stderr, or the timeout, if it failed."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        part = Path(f.name)
    cmd = [sys.executable, __file__, "--worker", case, "--worker-out", str(part), "--models", *models,
           "--repeat", str(repeat)]
    if profile_dir is not None:
        cmd += ["--profile", str(profile_dir)]
    if car_overrides:
        cmd += ["--car-overrides", *car_overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    load_before = os.getloadavg()
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, timeout=timeout, capture_output=True, text=True)
        error = None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]
    except subprocess.TimeoutExpired:
        error = f"timeout after {timeout:.0f} s"
    result = json.loads(part.read_text()) if part.stat().st_size else {"case": case, "models": {}}
    part.unlink(missing_ok=True)
    result.update(wall_s=time.perf_counter() - start, loadavg_before=load_before, loadavg_after=os.getloadavg())
    if error:
        result["error"] = error
    return result


def _fastest(run: dict[str, Any]) -> float:
    """Seconds of a model's fastest turn (results written before --repeat hold one total)."""
    return min(run.get("totals_s", [run["total_s"]]))


def _gb(x: float) -> str:
    return f"{x / 2**30:.2f}"


def markdown(results: list[dict[str, Any]]) -> str:
    """Wall seconds (what a user waits) and CPU seconds of this process (robust on a shared
    machine); stage columns are CAR's CPU seconds; ratios are CAR over rarity, of the median runs
    and of each model's fastest turn (the least disturbed one, where noise only slows a run)."""
    head = ["case", "alerts", "CAR wall s", "CAR CPU s", "alerts/s (wall)", "peak GB",
            *(f"{s} CPU" for s in STAGES), "rarity wall s", "rarity CPU s", "rarity peak GB",
            "CAR/rarity wall", "CAR/rarity CPU", "CAR/rarity fastest"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        car, rar = r["models"].get("car"), r["models"].get("rarity")
        if car is None:
            lines.append(f"| {r['case']} | " + " | ".join(["-"] * (len(head) - 2)) + f" | {r.get('error', 'no result')} |")
            continue
        st = car["stages"]
        cpu = sum(s["cpu_seconds"] for s in st.values())
        cells = [r["case"], f"{car['n_alerts']:,}", f"{car['total_s']:.1f}", f"{cpu:.1f}",
                 f"{car['n_alerts'] / car['total_s']:,.0f}", _gb(car["peak_rss"]),
                 *(f"{st[s]['cpu_seconds']:.1f}" for s in STAGES)]
        if rar is not None:
            rcpu = sum(s["cpu_seconds"] for s in rar["stages"].values())
            cells += [f"{rar['total_s']:.1f}", f"{rcpu:.1f}", _gb(rar["peak_rss"]),
                      f"{car['total_s'] / rar['total_s']:.1f}x", f"{cpu / rcpu:.1f}x",
                      f"{_fastest(car) / _fastest(rar):.1f}x"]
        else:
            cells += ["-"] * 6
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def substage_markdown(results: list[dict[str, Any]]) -> str:
    """CAR's sub-stage seconds per case (inclusive; nested timers overlap their parents)."""
    rows = [r for r in results if "car" in r["models"]]
    if not rows:
        return ""
    names = sorted({k for r in rows for k in r["models"]["car"]["substages"]})
    head = ["sub-stage (s)", *(r["case"] for r in rows)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        cells = [f"{r['models']['car']['substages'].get(name, {}).get('seconds', float('nan')):.2f}" for r in rows]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    extra = ["n_runs", "n_tuples", "n_types", "steps_per_epoch", "n_patterns"]
    for name in extra:
        lines.append(f"| ({name}) | " + " | ".join(str(r["models"]["car"].get(name, "-")) for r in rows) + " |")
    return "\n".join(lines)


def exponents(results: list[dict[str, Any]]) -> dict[str, float]:
    """Slope of log(seconds) on log(alerts) over the simulator cases, per model and CAR stage."""
    sims = [r for r in results if r["case"] in SIM_SIZES and "car" in r["models"]]
    if len(sims) < 2:
        return {}
    n = [math.log(r["models"]["car"]["n_alerts"]) for r in sims]
    series = {"car total": [r["models"]["car"]["total_s"] for r in sims],
              "car total CPU": [sum(s["cpu_seconds"] for s in r["models"]["car"]["stages"].values()) for r in sims],
              **{f"car {s}": [r["models"]["car"]["stages"][s]["seconds"] for r in sims] for s in STAGES},
              "car peak RSS": [r["models"]["car"]["peak_rss"] for r in sims]}
    if all("rarity" in r["models"] for r in sims):
        series["rarity total"] = [r["models"]["rarity"]["total_s"] for r in sims]
    out = {}
    for name, ys in series.items():
        y = [math.log(max(v, 1e-9)) for v in ys]
        mx, my = sum(n) / len(n), sum(y) / len(y)
        out[name] = sum((a - mx) * (b - my) for a, b in zip(n, y)) / sum((a - mx) ** 2 for a in n)
    return out


def print_tables(results: list[dict[str, Any]]) -> None:
    """Print the speed and sub-stage tables of ``results`` and the log-log slopes."""
    print(markdown(results), substage_markdown(results), sep="\n\n")
    exp = exponents(results)
    if exp:
        print("\nlog-log slope over the simulator sizes: " + ", ".join(f"{k} {v:.2f}" for k, v in exp.items()))


def main() -> None:
    """Run the cases (or print the tables of --table), writing --out after every case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=None, help=f"default: all, in this order: {' '.join(CASES)}")
    parser.add_argument("--quick", action="store_true", help=f"only {' '.join(QUICK)}")
    parser.add_argument("--models", nargs="*", default=MODELS, choices=MODELS)
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "bench_speed.json")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per case (both models)")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile CAR's stages into this folder")
    parser.add_argument("--car-overrides", nargs="*", default=[],
                        help="extra Hydra overrides for CAR only, e.g. model.ranking.beta=0")
    parser.add_argument("--repeat", type=int, default=3,
                        help=f"runs of each model, in turn, on {', '.join(REPEATED)} (the median run is reported); "
                             "larger cases run once")
    parser.add_argument("--table", type=Path, default=None, help="print the tables of an earlier --out JSON and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.worker_out, args.models, args.profile, args.car_overrides, args.repeat)
        return
    if args.table:
        print_tables(json.loads(args.table.read_text())["results"])
        return
    cases = QUICK if args.quick else (args.cases or CASES)
    for case in cases:
        data_overrides(case)  # unknown case: fail before running anything
    models = ["car"] if args.profile else args.models
    meta = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "car_overrides": args.car_overrides, "profile": str(args.profile) if args.profile else None}
    results = []
    for case in cases:
        repeat = args.repeat if not args.profile and case in REPEATED else 1
        r = run_case(case, models, args.timeout, args.profile, args.car_overrides, repeat)
        results.append(r)
        car = r["models"].get("car", {})
        print(f"  {case}: CAR {car.get('total_s', float('nan')):.1f} s, peak {_gb(car.get('peak_rss', 0))} GB"
              + (f", rarity {r['models']['rarity']['total_s']:.1f} s" if "rarity" in r["models"] else "")
              + (f"  ERROR {r['error']}" if "error" in r else ""), flush=True)
        if not args.profile:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"meta": meta, "results": results, "exponents": exponents(results)}, indent=1))
    if args.profile:
        print(f"profiles in {args.profile}")
        return
    print()
    print_tables(results)


if __name__ == "__main__":
    main()
