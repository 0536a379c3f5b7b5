"""Fit a ranker on alerts and write the ranked alerts: ``python train.py +experiment=enterprise``."""

import logging
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from car.errors import CARError, os_error_line
from car.pipeline import run

log = logging.getLogger("car")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Run one job; a CARError or a file-system error prints one line and exits 2 (no traceback)."""
    # SIGTERM (`kill`, a scheduler's time limit) raises SystemExit, so the MLflow run ends FAILED;
    # otherwise MLflow's exit hook marks the killed run FINISHED and `car compare` counts it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        metrics = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except CARError as err:
        log.error("%s", err)
        sys.exit(2)
    except OSError as err:
        log.error("%s", os_error_line(err))
        sys.exit(2)
    # The value a sweeper would optimise: AP on the first label kind, if any.
    return next((v for k, v in metrics.items() if k.endswith("/raw/ap")), None)


if __name__ == "__main__":
    main()
