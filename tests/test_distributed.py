"""Data-parallel training under torchrun (2 gloo processes on loopback) on a small real FER2013 subset.

The model is seed004_model2 with --dropout 0: no BatchNorm and no dropout, so a 2-process step on
two halves of a global batch equals a 1-process step on the whole batch up to float rounding (with
BatchNorm each process would normalise its own half). Each run is killed after its first epoch and
resumed the other way: torchrun -> one process, one process -> torchrun.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ferkit.training import Trainer, TrainConfig, load_checkpoint

EPOCHS = 3
REL_TOL = 1e-4  # train/val loss per epoch, relative; weights: absolute 1e-4

pytestmark = pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                                reason="torchrun is not installed beside this python")


@pytest.fixture(scope="module")
def subset(fer2013, tmp_path_factory) -> Path:
    """512 Training, 256 PublicTest and 16 PrivateTest faces of FER2013, as a Kaggle-style CSV."""
    path = tmp_path_factory.mktemp("fer2013-subset") / "subset.csv"
    with open(path, "w") as f:
        f.write("emotion,pixels,Usage\n")
        for split, usage, n in (("train", "Training", 512), ("val", "PublicTest", 256), ("test", "PrivateTest", 16)):
            s = fer2013.split(split)
            for im, y in zip(s.images[:n], s.labels[:n]):
                f.write(f"{y},{' '.join(map(str, im.ravel()))},{usage}\n")
    return path


def _cmd(processes: int) -> list[str]:
    python = [sys.executable, "-m", "ferkit", "train"]
    if processes == 1:
        return python + ["--threads", "1"]
    return [str(Path(sys.executable).with_name("torchrun")), "--standalone", f"--nproc-per-node={processes}",
            "-m", "ferkit", "train"]


def _train_args(data: Path, project: Path, name: str) -> list[str]:
    return ["--model", "seed004_model2", "--dropout", "0", "--data", str(data), "--epochs", str(EPOCHS),
            "--batch-size", "32", "--schedule", "none", "--quiet", "--project", str(project), "--name", name]


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "FERKIT_CACHE_DIR": str(tmp / "cache"), "OMP_NUM_THREADS": "1"}


def _run_ok(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` to the end; on failure the assertion shows its stderr (torchrun's and the ranks' errors)."""
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def _run_killed_after_first_epoch(cmd: list[str], env: dict[str, str], run_dir: Path) -> int:
    """Start ``cmd``, kill it and its workers once ``last.pt`` holds epoch 1; the epoch it holds."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    last, deadline = run_dir / "last.pt", time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and load_checkpoint(last)["epoch"] >= 1:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        # torchrun starts each worker in a session of its own, so a SIGKILL to torchrun's group would leave them
        # training (and appending to metrics.csv while the run resumes); SIGTERM makes torchrun end its workers
        # (SIGTERM, then SIGKILL after 30 s) before it exits, and a one-process run dies of it at once.
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait()
    return load_checkpoint(last)["epoch"]


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def _same_run(a: Path, b: Path) -> None:
    ma, mb = _metrics(a), _metrics(b)
    assert [r["epoch"] for r in ma] == [r["epoch"] for r in mb] == [str(e) for e in range(1, EPOCHS + 1)]
    for ra, rb in zip(ma, mb):
        for key in ("train_loss", "val_loss"):
            assert float(ra[key]) == pytest.approx(float(rb[key]), rel=REL_TOL), (key, ra, rb)
        assert ra["val_acc"] == rb["val_acc"]
    wa, wb = load_checkpoint(a / "last.pt")["state_dict"], load_checkpoint(b / "last.pt")["state_dict"]
    assert wa.keys() == wb.keys()  # no "module." prefix: DDP's checkpoints are single-process state dicts
    diff = max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)
    assert diff < 1e-4, diff


@pytest.mark.slow  # 142 s on the 2.0 GHz EPYC, the suite's longest: `make test-slow` runs it
def test_two_processes_match_one_and_resume_either_way(subset, tmp_path):
    env, runs = _env(tmp_path), tmp_path / "runs"
    _run_ok(_cmd(1) + _train_args(subset, runs, "single"), env)

    # torchrun (2 processes), killed after epoch 1, finished in one process
    epoch = _run_killed_after_first_epoch(_cmd(2) + _train_args(subset, runs, "ddp-then-single"), env,
                                          runs / "ddp-then-single")
    assert 1 <= epoch < EPOCHS, "the run should have been killed mid-way"
    _run_ok(_cmd(1) + ["--resume", str(runs / "ddp-then-single"), "--quiet"], env)
    _same_run(runs / "single", runs / "ddp-then-single")

    # one process, killed after epoch 1, finished by torchrun (2 processes)
    epoch = _run_killed_after_first_epoch(_cmd(1) + _train_args(subset, runs, "single-then-ddp"), env,
                                          runs / "single-then-ddp")
    assert 1 <= epoch < EPOCHS, "the run should have been killed mid-way"
    done = _run_ok(_cmd(2) + ["--resume", str(runs / "single-then-ddp"), "--quiet"], env)
    assert done.stdout.count("best val accuracy") == 1  # rank 0 alone reports
    _same_run(runs / "single", runs / "single-then-ddp")


def test_global_batch_must_split_evenly(monkeypatch, tmp_path):
    """Refused before any process group is joined (as torchrun's 2 processes would see it)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="must be divisible by the 2 processes"):
        Trainer(TrainConfig(model="seed004_model2", data="unused", batch_size=33, project=str(tmp_path)), progress=False)
