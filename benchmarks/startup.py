"""Start-up cost of the ferkit commands, old code against new, measured alternately in one run.

    .venv/bin/python benchmarks/startup.py --ref 3341d12 [--new HEAD] [--repeats 7] [--out benchmarks/startup.md]

Each revision is checked out with ``git worktree`` under /tmp and run from a cold process with its ``src`` on
PYTHONPATH (same interpreter and packages). Per repetition, every measure runs once for the old code and once for
the new one, one after the other, so that a machine that is busy for a while slows both; the table gives medians.
Measures: ``ferkit --help`` and ``ferkit predict`` on one bundled photo (wall time and peak RSS of the process,
from wait4), ``ferkit serve`` until its first 200 from /healthz (wall time, and the server's peak RSS then), and
the import of what a Ray worker of ``predict --engine ray`` loads to run its task (ferkit.apps.predict_ray).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "src" / "ferkit" / "assets" / "astronaut.jpg"
Sample = tuple[float, float]  # seconds, peak RSS in MiB
NOTES = ("Targets (issue 15, item 4): `ferkit --help` <= 0.5 s and a one-photo `ferkit predict` <= 1.5 s from a cold "
         "process. The Ray row is what a worker of `ferkit predict --engine ray` imports before its first task (the "
         "old `import ferkit` loaded PyTorch, scikit-learn and matplotlib in every worker). The whole Ray start "
         "(cluster and worker processes; predict_scale.md reports 9 s of worker start-up, measured with the old "
         "imports) would need a Ray cluster started per sample on these 2 cores, so only the imports are timed.")


def checkout(rev: str) -> Path:
    """A detached worktree of ``rev`` under /tmp (reused when it is already there)."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    path = Path(tempfile.gettempdir()) / f"ferkit-startup-{sha}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True,
                       capture_output=True)
    return path


def env_for(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree / "src"), "OMP_NUM_THREADS": "1"}


def timed(argv: list[str], env: dict[str, str]) -> Sample:
    """Wall time and peak RSS of a process run to its end (it must succeed)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{argv} failed: {err.read().decode()[-500:]}")
    return seconds, usage.ru_maxrss / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_until_healthy(env: dict[str, str]) -> Sample:
    """Seconds from starting ``ferkit serve`` to its first 200 from /healthz, and its peak RSS at that moment."""
    port = free_port()
    start = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "ferkit", "serve", "--port", str(port)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if p.poll() is not None:
                raise RuntimeError("ferkit serve exited before answering /healthz")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.02)
        seconds = time.perf_counter() - start
        status = Path(f"/proc/{p.pid}/status").read_text()
        peak_kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
        return seconds, peak_kib / 1024
    finally:
        p.terminate()
        p.wait()


def measures(out_dir: Path) -> dict[str, Callable[[dict[str, str]], Sample]]:
    py = [sys.executable, "-m", "ferkit"]
    return {
        "`ferkit --help`": lambda env: timed([*py, "--help"], env),
        "`ferkit predict` one photo": lambda env: timed(
            [*py, "predict", str(PHOTO), "--out", str(out_dir / str(time.perf_counter_ns())), "--quiet"], env),
        "`ferkit serve` to first /healthz": serve_until_healthy,
        "Ray worker's imports (`import ferkit.apps.predict_ray`)": lambda env: timed(
            [sys.executable, "-c", "import ferkit.apps.predict_ray"], env),
    }


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", required=True, help="the old code: a git revision")
    ap.add_argument("--new", default="HEAD", help="the new code: a git revision (default HEAD)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default="benchmarks/startup.md")
    args = ap.parse_args()
    trees = {"before": checkout(args.ref), "after": checkout(args.new)}
    results: dict[tuple[str, str], list[Sample]] = {}
    load_start = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        todo = measures(Path(tmp))
        for measure in todo.values():  # one untimed run each: the page cache holds the packages for both
            for tree in trees.values():
                measure(env_for(tree))
        for i in range(args.repeats):
            for name, measure in todo.items():
                for label, tree in trees.items():
                    results.setdefault((name, label), []).append(measure(env_for(tree)))
            print(f"repetition {i + 1}/{args.repeats} done (load average {load_average()})", flush=True)
    write_report(Path(args.out), args, trees, results, load_start, load_average())


def write_report(out: Path, args: argparse.Namespace, trees: dict[str, Path],
                 results: dict[tuple[str, str], list[Sample]], load_start: str, load_end: str) -> None:
    revs = {label: tree.name.removeprefix("ferkit-startup-") for label, tree in trees.items()}
    lines = ["# Start-up cost of the ferkit commands", "",
             f"Written by `.venv/bin/python benchmarks/startup.py --ref {args.ref} --new {args.new} --repeats "
             f"{args.repeats}`: old code ({revs['before']}) and new code ({revs['after']}) run alternately, each "
             f"measure once per repetition for each, {args.repeats} repetitions, medians (min-max). Cold processes "
             f"(a new interpreter each time; the page cache warm). {os.cpu_count()} cores, shared with a training run "
             f"and other work: load average {load_start} at the start, {load_end} at the end (1, 5, 15 min), so "
             "absolute times vary; the two columns saw the same load.", "",
             "| measure | before: wall s | after: wall s | before: peak RSS MiB | after: peak RSS MiB |",
             "|---|---|---|---|---|"]
    names = list(dict.fromkeys(name for name, _ in results))
    for name in names:
        cells = []
        for k in (0, 1):
            for label in ("before", "after"):
                values = [s[k] for s in results[(name, label)]]
                fmt = "{:.2f}" if k == 0 else "{:.0f}"
                cells.append(f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-"
                             f"{fmt.format(max(values))})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", NOTES]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
