"""Fit a ranker on alerts and write the ranked alerts: ``python train.py +experiment=enterprise``."""

import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from car.errors import CARError, os_error_line
from car.pipeline import run

log = logging.getLogger("car")
TRAINING_LOOP = str(Path("loops") / "training_epoch_loop.py")  # Lightning's batch loop, which checks for SIGTERM


class JobFailed(CompactHydraException):
    """A job of a sweep (``-m``) that failed with a one-line error: Hydra runs the sweep's other
    jobs, then prints this line and exits 1 (``sys.exit`` would end the whole sweep there)."""


def fail(message: str) -> NoReturn:
    """Log ``message``; exit 2 in a single run, raise JobFailed in a job of a sweep."""
    log.error("%s", message)
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        raise JobFailed(message) from None
    sys.exit(2)


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Exit with 128 + signum, so that the MLflow run ends FAILED. Inside Lightning's batch loop
    the Trainer's own handler, which runs first, has marked the signal and the loop stops at the
    end of the batch (SIGTERMException) once its metrics are written: exiting there at once could
    cut an MLflow write and leave the store locked, so that the run could not be ended."""
    while frame is not None:
        if frame.f_code.co_filename.endswith(TRAINING_LOOP):
            return
        frame = frame.f_back
    sys.exit(128 + signum)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Run one job; a CARError or a file-system error prints one line and exits 2 (no traceback);
    in a sweep the other jobs still run, then Hydra prints the first failure and exits 1."""
    # SIGTERM (`kill`, a scheduler's time limit) raises SystemExit, so the MLflow run ends FAILED;
    # otherwise MLflow's exit hook marks the killed run FINISHED and `car compare` counts it.
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        metrics = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except SIGTERMException:
        sys.exit(128 + signal.SIGTERM)
    except CARError as err:
        fail(str(err))
    except OSError as err:
        fail(os_error_line(err))
    # The value a sweeper would optimise: AP on the first label kind, if any.
    return next((v for k, v in metrics.items() if k.endswith("/raw/ap")), None)


if __name__ == "__main__":
    main()
