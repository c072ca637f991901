"""Face detectors on the example photos: faces found against the faces there, and speed.

    .venv/bin/python benchmarks/detectors.py [--examples ../shared/examples] [--out benchmarks/detectors.md]

Counts per photo (expected counts from ../shared/examples/README.md: the group photo has 6 faces,
the film still 3, three portraits 1 each, one photo none), and the median ms per 640x480 frame (the
bundled photo's top 480 rows on a grey canvas), both detectors timed in this one run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from inference_speed import frame_640x480, median_ms  # noqa: E402

from ferkit.demo import demo_photo  # noqa: E402
from ferkit.inference import read_image  # noqa: E402
from ferkit.inference.detect import DETECTORS, create_detector  # noqa: E402

EXPECTED = {"oarriaga_test_image.jpg": 6, "sr6033_group.jpg": 3, "wujie_images_1.jpg": 1, "wujie_images_2.jpg": 1,
            "fer_justin.jpg": 1, "fer_no-faces.jpg": 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", default=str(Path(__file__).resolve().parents[2] / "shared" / "examples"))
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--out", default="benchmarks/detectors.md")
    args = ap.parse_args()
    photos = {name: read_image(Path(args.examples) / name) for name in EXPECTED}
    photos["astronaut.jpg (bundled)"] = read_image(demo_photo())
    expected = {**EXPECTED, "astronaut.jpg (bundled)": 1}
    frame = frame_640x480()
    rows = []
    for name in DETECTORS:
        det = create_detector(name)
        counts = {p: len(det.detect(img)) for p, img in photos.items()}
        ms = median_ms(lambda: det.detect(frame), args.runs, warmup=5)
        found = sum(min(counts[p], expected[p]) for p in photos)
        extra = sum(max(0, counts[p] - expected[p]) for p in photos)
        rows.append((name, counts, found, extra, ms))
        print(f"{name}: {counts}, {ms:.1f} ms per frame")
    total = sum(expected.values())
    lines = [f"# Face detectors ({os.cpu_count()} cores)", "",
             "Measured with `.venv/bin/python benchmarks/detectors.py`: faces found in each photo of "
             "`../shared/examples` (expected count in brackets) and median ms per 640x480 frame with one face. "
             "Found = faces up to the expected count (boxes checked by eye on the annotated images); "
             "extra = detections beyond it (false positives).", "",
             "| detector | " + " | ".join(f"{p} ({expected[p]})" for p in photos) + f" | found of {total} | extra | ms per frame |",
             "|---|" + "---:|" * (len(photos) + 3)]
    lines += [f"| {n} | " + " | ".join(str(c[p]) for p in photos) + f" | {f} | {x} | {ms:.1f} |"
              for n, c, f, x, ms in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
