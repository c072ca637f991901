"""The GPU campaign script, dry-run on the CPU: the same entry point, a tiny data set, one epoch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import fer_csv_text, fer_image

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_campaign.py"


def _tiny_csv(path: Path) -> Path:
    rows = [(i % 7, fer_image(i), usage) for usage, n in (("Training", 70), ("PublicTest", 21), ("PrivateTest", 21))
            for i in range(n)]
    path.write_text(fer_csv_text(rows))
    return path


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
           "FERKIT_CACHE_DIR": str(cwd / "cache")}
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_pack_round_trips_the_splits(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    from gpu_campaign import load_packed
    from ferkit.data import load_dataset

    csv = _tiny_csv(tmp_path / "fer2013.csv")
    _run("pack", str(csv), "carry/fer.npz.xz", cwd=tmp_path)
    packed, ref = load_packed(tmp_path / "carry" / "fer.npz.xz"), load_dataset(csv, cache=False)
    for split in ("Training", "PublicTest", "PrivateTest"):
        assert np.array_equal(packed.split(split).images, ref.split(split).images)
        assert np.array_equal(packed.split(split).labels, ref.split(split).labels)
        assert np.array_equal(packed.split(split).ids, ref.split(split).ids)


def test_campaign_dry_run_writes_every_returned_file(tmp_path):
    csv = _tiny_csv(tmp_path / "fer2013.csv")
    _run("pack", str(csv), "fer.npz.xz", cwd=tmp_path)
    _run("train", "fer.npz.xz", "--out", "out", "--work", "work", "--device", "cpu", "--threads", "1", "--limit", "64",
         "--max-epochs", "1", "--members", "resnet_s:0,resnet_s:1", "--batch-size", "16", "--crop", "40", cwd=tmp_path)
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["best_member.pt", "log.txt", "metrics.csv", "probs.npz", "student.pt", "summary.json"]
    assert len(names) <= 8 and all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())
    summary = json.loads((out / "summary.json").read_text())
    assert [m["name"] for m in summary["members"]] == ["resnet_s-seed0", "resnet_s-seed1"]
    assert summary["student"]["name"] == "resnet_s-distilled" and summary["amp_bf16"] is False
    for row in summary["members"] + [summary["student"], summary["ensemble"]]:
        for key in ("PublicTest/none", "PublicTest/flip", "PrivateTest/tencrop"):
            assert 0 <= row["accuracy"][key] <= 100
    with np.load(out / "probs.npz") as z:
        public = z["resnet_s-seed1/PublicTest/flip"].astype(np.float32)
        assert public.shape == (21, 7) and np.allclose(public.sum(1), 1, atol=1e-2)
        assert z["ensemble/Training/flip"].shape == (64, 7)
        labels = z["labels/PrivateTest"]
        ens = (z["resnet_s-seed0/PrivateTest/none"].astype(np.float32) + z["resnet_s-seed1/PrivateTest/none"]) / 2
    assert abs(float((ens.argmax(1) == labels).mean()) * 100 - summary["ensemble"]["accuracy"]["PrivateTest/none"]) < 5
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("run,epoch") and len(lines) == 1 + 3  # two members and the student, one epoch each

    from ferkit.training import model_from_checkpoint

    model, ckpt = model_from_checkpoint(out / "student.pt")
    assert ckpt["model"] == "resnet_s" and ckpt["config"]["teacher"]


def test_large_files_are_split_under_the_return_limit(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "tools"))
    import gpu_campaign

    monkeypatch.setattr(gpu_campaign, "MAX_RETURN_BYTES", 10)
    src = tmp_path / "big.bin"
    src.write_bytes(bytes(range(15)))
    parts = gpu_campaign.write_split(src, tmp_path, "big.pt")
    assert [p.name for p in parts] == ["big.pt.00", "big.pt.01"]
    assert b"".join(p.read_bytes() for p in parts) == src.read_bytes()
