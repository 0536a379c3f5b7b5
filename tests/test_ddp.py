"""Training with Lightning DDP (`trainer=ddp_cpu`: 2 gloo processes) ranks like one process.

Tolerance. DDP changes the training in two ways only: each process draws its own NCE noise
(seed + rank), and each averages its loss over its half of a step's tuples and runs before
the gradients are averaged (halves differ by at most one item). So the Pitman-Yor part must
match closely and the embeddings may move as with another noise stream. The bars are stricter
than what another seed does to a single-process fit (10,000 simulator alerts, 5 epochs;
seed 0 vs 1 vs 2, measured): score Spearman 0.986-0.990, max |score difference| 1.05-1.25
on a score range of 4.4, temporal scores 6e-3-8e-3 apart, content scores Spearman
0.07-0.33. DDP measured: 0.9964, 0.39, 9e-5, 0.81. AP is not compared: at this size it
swings 0.036-0.061 between seeds, so it could not tell a broken fit from a good one.
"""

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from scipy.stats import spearmanr

from car.data import load_alerts
from car.data.datamodule import AlertDataModule, encode_alerts, shard
from car.errors import ConfigError
from conftest import REPO

EPOCHS = 5
MIN_SPEARMAN = 0.99          # scores; another seed: 0.986-0.990
MAX_SCORE_DIFF = 0.6         # another seed: 1.05-1.25 (score range 4.4)
MAX_TEMPORAL_DIFF = 1e-3     # temporal surprise, nats; another seed: 6e-3-8e-3
MIN_CONTENT_SPEARMAN = 0.5   # content anomaly; another seed: 0.07-0.33
PARAM_TOL = 1e-3             # Pitman-Yor discounts and strengths


class Probe(L.Callback):
    """Writes, per process, its rank, world size, the tuples it trained on in epoch 0 and its
    final parameters, to ``folder/rank<r>.pt``: what a spawned process cannot return."""

    def __init__(self, folder: str) -> None:
        self.folder, self.seen = folder, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == 0:
            self.seen.append(batch["tuples"].clone())

    def on_train_end(self, trainer, pl_module) -> None:
        state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        torch.save({"rank": trainer.global_rank, "world": trainer.world_size, "seen": torch.cat(self.seen),
                    "state": state}, f"{self.folder}/rank{trainer.global_rank}.pt")


def trainer_options(group: str, **extra) -> dict:
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=[f"trainer={group}"])
    return {**OmegaConf.to_container(cfg.trainer), "max_epochs": EPOCHS, "logger": False,
            "enable_progress_bar": False, **extra}


def car_model():
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return instantiate(compose("train", overrides=["model=car"]).model)


@pytest.fixture(scope="module")
def sim():
    return load_alerts({"format": "enterprise_sim", "n_alerts": 10000, "seed": 1}, None)


def test_ddp_fit_ranks_like_one_process(sim, tmp_path):
    one = car_model().fit(sim.unlabeled(), trainer=trainer_options("cpu"))
    ddp = car_model().fit(sim.unlabeled(), trainer=trainer_options("ddp_cpu", callbacks=[Probe(str(tmp_path))]))

    # Two processes ran (not one silently), with the same parameters at the end (gradients synced) ...
    runs = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [(p["rank"], p["world"]) for p in runs] == [(0, 2), (1, 2)]
    for name, value in runs[0]["state"].items():
        assert torch.equal(value, runs[1]["state"][name]), name
    # ... which came back to this process, where the ranking runs.
    for name, value in ddp.module.state_dict().items():
        assert torch.equal(value, runs[0]["state"][name]), name
    # Each process trained on its own half of the tuples: disjoint, together all of them.
    seen = [{tuple(row) for row in p["seen"].tolist()} for p in runs]
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == {tuple(row) for row in ddp.data.tuples.tolist()}
    assert min(map(len, seen)) >= 0.45 * len(ddp.data.tuples)

    for name in ("discount", "strength"):
        a, b = getattr(one.module.temporal, name)(), getattr(ddp.module.temporal, name)()
        assert torch.allclose(a, b, atol=PARAM_TOL), (name, a, b)
    r1, r2 = one.rank(sim.unlabeled()), ddp.rank(sim.unlabeled())
    assert spearmanr(r1.scores, r2.scores).statistic >= MIN_SPEARMAN
    assert np.abs(r1.scores - r2.scores).max() <= MAX_SCORE_DIFF
    assert np.abs(r1.columns["temporal_score"] - r2.columns["temporal_score"]).max() <= MAX_TEMPORAL_DIFF
    assert spearmanr(r1.columns["content_score"], r2.columns["content_score"]).statistic >= MIN_CONTENT_SPEARMAN


def test_the_processes_of_a_step_share_the_single_process_step_between_them():
    whole = shard(1000, 7, np.random.default_rng(0))
    parts = [shard(1000, 7, np.random.default_rng(0), rank=r, world=3) for r in range(3)]
    assert np.array_equal(np.sort(np.concatenate(whole)), np.arange(1000))
    for b, step in enumerate(whole):
        pieces = [p[b] for p in parts]
        assert min(map(len, pieces)) >= len(step) // 3
        assert np.array_equal(np.concatenate(pieces), step)


def test_too_little_data_for_the_processes_is_a_config_error(sim):
    data = AlertDataModule(encode_alerts(sim.unlabeled()), depth=4, tuple_batch=4096, seed=0)
    data.check_processes(2)
    with pytest.raises(ConfigError, match="use fewer processes"):
        data.check_processes(len(data.tuples))


def test_the_training_step_stays_on_the_device_of_its_batch(sim):
    """What a GPU or another accelerator needs: on the ``meta`` device (tensors without data,
    which refuse ``.numpy()``, ``.item()`` and mixing with CPU tensors) the joint training step
    runs forward and backward, and every gradient lands on that device."""
    from car.models.car_module import CARModule

    model = car_model()
    encoded = encode_alerts(sim, None, float(model.options["temporal"]["run_gap"]))
    data = AlertDataModule(encoded, model.options["temporal"]["depth"], model.tuple_batch, seed=0)
    data.setup("fit")
    module = CARModule(encoded.n_symbols, [len(v) for v in encoded.vocab.values()], **model.options)
    module.set_noise(data.tuples, data.tuple_counts)
    module.setup("fit")
    module = module.to("meta")
    batch = {key: value.to("meta") for key, value in next(iter(data.train_dataloader())).items()}
    loss = module.training_step(batch, 0)
    loss.backward()
    assert loss.device.type == "meta"
    grads = {name: p.grad for name, p in module.named_parameters()}
    assert grads and all(g is not None and g.device.type == "meta" for g in grads.values()), grads


def test_every_process_of_a_fit_runs_on_the_runs_threads(sim):
    """ddp_spawn's launcher sets torch's threads in each new process to cores / processes (Lightning's
    choice, where OMP_NUM_THREADS is unset), whatever ``threads`` says: the module takes the run's
    count along and sets it again when the fit starts in that process."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # configure(seed, threads=1), as train.py does
        model = car_model().fit(sim.unlabeled(), trainer=trainer_options("cpu", max_steps=1))
        assert model.module.threads == 1
        torch.set_num_threads(2)  # what the launcher does in a spawned process on 4 cores and 2 processes
        model.module.setup("fit")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
