"""The Lightning logger of a tracked run (its own module: importing Lightning is slow, and
``car compare`` imports car.outputs.tracking without it; module level, so that ddp_spawn can
send it to its processes)."""

from __future__ import annotations

from lightning.pytorch.loggers import MLFlowLogger


class RunLogger(MLFlowLogger):
    """MLFlowLogger that leaves the run open at the end of the fit: Lightning's marks the run
    FINISHED there, before the ranking and the metrics, so that a run killed (out of memory)
    while ranking stayed FINISHED without metrics and one still ranking looked finished to
    ``car compare``. The Tracker ends the run."""

    def finalize(self, status: str = "success") -> None:
        if self._checkpoint_callback:  # only with log_model, as in MLFlowLogger.finalize
            self._scan_and_log_checkpoints(self._checkpoint_callback)
