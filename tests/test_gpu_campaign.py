"""The GPU campaign script, dry-run on the CPU: the same entry points, a tiny data set, one epoch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import fer_csv_text, fer_image

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_campaign.py"
sys.path.insert(0, str(ROOT / "tools"))

import gpu_campaign  # noqa: E402


def _tiny_csv(path: Path) -> Path:
    rows = [(i % 7, fer_image(1000 * k + i), usage)
            for k, (usage, n) in enumerate((("Training", 70), ("PublicTest", 21), ("PrivateTest", 21))) for i in range(n)]
    path.write_text(fer_csv_text(rows))
    return path


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
           "FERKIT_CACHE_DIR": str(cwd / "cache")}
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_residual_coding_is_lossless():
    rng = np.random.default_rng(0)
    images = np.concatenate([rng.integers(0, 256, (5, 48, 48), dtype=np.uint8),  # noise: every wrap-around
                             np.stack([fer_image(i) for i in range(3)]),
                             np.tile(np.arange(48, dtype=np.uint8) * 5, (2, 48, 1))])  # smooth ramps
    residuals = gpu_campaign.encode_residuals(images)
    assert residuals.dtype == np.uint8 and residuals.shape == images.shape
    assert np.array_equal(gpu_campaign.decode_residuals(residuals), images)
    # a smooth ramp is predicted exactly (residual 0) but for its first row (left neighbour only): xz's easy case
    assert (residuals[-2:, 1:, 1:] == 0).all() and (residuals[-2:, 0, 1:] == 5).all()


def test_pack_carries_training_and_publictest_only(tmp_path):
    from ferkit.data import load_dataset

    csv = _tiny_csv(tmp_path / "fer2013.csv")
    _run("pack", str(csv), "carry/fer.npz.xz", cwd=tmp_path)
    packed, ref = gpu_campaign.load_packed(tmp_path / "carry" / "fer.npz.xz"), load_dataset(csv, cache=False)
    assert sorted(packed.splits) == ["PublicTest", "Training"] and "test" not in packed.roles
    for split in ("Training", "PublicTest"):
        assert np.array_equal(packed.split(split).images, ref.split(split).images)
        assert np.array_equal(packed.split(split).labels, ref.split(split).labels)
        assert np.array_equal(packed.split(split).ids, ref.split(split).ids)


def test_campaign_dry_run_and_report(tmp_path):
    csv = _tiny_csv(tmp_path / "fer2013.csv")
    _run("pack", str(csv), "fer.npz.xz", cwd=tmp_path)
    _run("train", "fer.npz.xz", "--out", "out", "--work", "work", "--device", "cpu", "--threads", "1", "--limit", "64",
         "--max-epochs", "1", "--members", "resnet_s:0,resnet_s:1", "--batch-size", "16", "--crop", "40", cwd=tmp_path)
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["metrics.csv", "probs.npz", "resnet_s-seed0.pt", "resnet_s-seed1.pt", "student.pt", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert [m["name"] for m in summary["members"]] == ["resnet_s-seed0", "resnet_s-seed1"]
    assert summary["student"]["name"] == "student" and summary["amp_bf16"] is False and summary["crop"] == 40
    with np.load(out / "probs.npz") as z:
        assert "PrivateTest" not in " ".join(z.files)
        public = [z[f"resnet_s-seed{i}/PublicTest/none"].astype(np.float32) for i in range(2)]
        assert public[0].shape == (21, 7) and np.allclose(public[0].sum(1), 1, atol=1e-2)
        assert z["ensemble/Training/flip"].shape == (64, 7)
        assert not np.allclose(public[0], public[1], atol=1e-2)  # two seeds: an ensemble of one would show
        ensemble = z["ensemble/PublicTest/none"].astype(np.float32)
        assert np.allclose(ensemble, np.mean(public, axis=0), atol=5e-4)  # every member's vote, in float16
        ens_acc = float((ensemble.argmax(1) == z["labels/PublicTest"]).mean()) * 100
    assert abs(ens_acc - summary["ensemble"]["PublicTest"]["none"]) < 5  # float16 rounding may flip a tie
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("run,epoch") and len(lines) == 1 + 3  # two members and the student, one epoch each

    proc = _run("report", "out", "--data", str(csv), "--dest", "report", "--threads", "1", cwd=tmp_path)
    rows = json.loads((tmp_path / "report" / "report.json").read_text())["rows"]
    assert [r["name"] for r in rows] == ["resnet_s-seed0", "resnet_s-seed1", "student",
                                         "ensemble of resnet_s-seed0 + resnet_s-seed1"]
    assert all(set(r["PrivateTest"]) == {"none", "flip", "tencrop"} for r in rows)
    assert "| student | resnet_s | 1 (1) |" in proc.stdout

    from ferkit.training import model_from_checkpoint

    _, ckpt = model_from_checkpoint(tmp_path / "report" / "student.pt")
    assert ckpt["model"] == "resnet_s" and len(ckpt["config"]["teacher"]) == 2


def test_the_default_plan_fits_what_the_device_returns():
    members = [gpu_campaign.Member.parse(m) for m in ("resnet_m:0", "resnet_m:1")]
    files = gpu_campaign.returned_files(members, "resnet_s")
    assert [n for n, _ in files][3:] == ["resnet_m-seed0.pt.00", "resnet_m-seed0.pt.01", "resnet_m-seed1.pt.00",
                                         "resnet_m-seed1.pt.01", "student.pt"]
    gpu_campaign.check_plan(members, "resnet_s")
    with pytest.raises(SystemExit, match="returns 10 files"):
        gpu_campaign.check_plan(members + [gpu_campaign.Member("resnet_m", 2)], "resnet_s")


def test_large_weights_are_split_into_parts_that_join_back(tmp_path, monkeypatch):
    from ferkit.data.synthetic import synthetic_dataset
    from ferkit.training import train

    run = train(dataset=synthetic_dataset(per_class=(4, 2, 2), seed=0), project=str(tmp_path), progress=False,
                model="resnet_s", data="synthetic", epochs=1, batch_size=8, threads=1)
    monkeypatch.setattr(gpu_campaign, "MAX_FILE_BYTES", 1 << 20)
    (tmp_path / "out").mkdir()
    names = gpu_campaign.write_weights(run.run_dir, tmp_path / "out", "m", tmp_path)
    assert names == ["m.pt.00", "m.pt.01", "m.pt.02"]
    joined = b"".join((tmp_path / "out" / n).read_bytes() for n in names)
    assert joined == (tmp_path / "m.pt").read_bytes()
