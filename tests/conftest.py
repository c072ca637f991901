"""Shared fixtures: a private cache folder, and FER2013 from ../shared when it is there."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Tests never write to ~/.cache: every cached array goes to a session temp folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FERKIT_CACHE_DIR", str(tmp_path_factory.mktemp("ferkit-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def fer2013_path() -> Path:
    path = SHARED_DATA / "fer2013.csv.gz"
    if not path.exists():
        pytest.skip(f"FER2013 not found at {path} (the shared data folder is absent)")
    return path


@pytest.fixture(scope="session")
def fer2013(fer2013_path):
    from ferkit.data import load_dataset

    return load_dataset(fer2013_path)


# --- Small synthetic FER2013 CSVs -------------------------------------------------------------

FER_HEADER = "emotion,pixels,Usage"


def fer_image(seed: int):
    """A reproducible random 48x48 uint8 face-sized image (distinct for distinct seeds)."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, size=(48, 48), dtype=np.uint8)


def pixels_text(image) -> str:
    """The FER2013 ``pixels`` field of a 48x48 image: 2304 space-separated values."""
    return " ".join(str(int(v)) for v in image.ravel())


def fer_csv_text(rows, header: str = FER_HEADER) -> str:
    """CSV text for ``rows``: each a tuple (emotion, image-or-pixel-string, usage), or a raw line string."""
    lines = [header]
    for row in rows:
        if isinstance(row, str):
            lines.append(row)
            continue
        emotion, pixels, usage = row
        lines.append(f"{emotion},{pixels if isinstance(pixels, str) else pixels_text(pixels)},{usage}")
    return "\n".join(lines) + "\n"


def write_fer_csv(path, rows, header: str = FER_HEADER):
    """Write a FER2013 CSV; ``.csv.gz`` paths are gzipped. Returns the path."""
    import gzip

    path = Path(path)
    data = fer_csv_text(rows, header).encode()
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


def write_fer_tar(path, rows, member: str = "fer2013/fer2013.csv"):
    """A Kaggle-style ``fer2013.tar.gz``: ``fer2013/README``, then the CSV as ``member``."""
    import io
    import tarfile

    path = Path(path)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("fer2013/README", b"FER2013, see the challenge page.\n"),
                           (member, fer_csv_text(rows).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def fer_rows():
    """12 rows with distinct known images: Training one per class (labels 0..6), PublicTest
    labels 1, 3, 5 and PrivateTest labels 0, 6. Images are ``fer_image(i)`` for row ``i``."""
    labels = [0, 1, 2, 3, 4, 5, 6, 1, 3, 5, 0, 6]
    usage = ["Training"] * 7 + ["PublicTest"] * 3 + ["PrivateTest"] * 2
    return [(y, fer_image(i), u) for i, (y, u) in enumerate(zip(labels, usage))]


# --- A small trained model, its ONNX export, a recogniser on it and a short clip: shared by the export,
# recogniser, predict-command, video and webcam tests, made once per session -------------------------

@pytest.fixture(scope="session")
def toy():
    from ferkit.data.synthetic import synthetic_dataset

    return synthetic_dataset(per_class=(24, 8, 8), seed=5)


@pytest.fixture(scope="session")
def checkpoint(toy, tmp_path_factory):
    from ferkit.training import train

    run = train(dataset=toy, project=str(tmp_path_factory.mktemp("runs")), progress=False, model="resnet_s",
                data="synthetic", epochs=2, batch_size=32, optimizer="adamw", lr=3e-3)
    return run.run_dir / "best.pt"


@pytest.fixture(scope="session")
def onnx_fp32(checkpoint, toy):
    from ferkit.export import export

    return export(checkpoint, data=toy)


@pytest.fixture(scope="session")
def recognizer(onnx_fp32):
    from ferkit.inference import Recognizer

    return Recognizer(model=onnx_fp32.path)


@pytest.fixture(scope="session")
def clip(tmp_path_factory):
    """A 20-frame 640x480 mp4 of the bundled photo drifting right by 2 px a frame."""
    import cv2
    import numpy as np

    from ferkit.demo import demo_photo
    from ferkit.inference import read_image

    photo = cv2.cvtColor(read_image(demo_photo()), cv2.COLOR_RGB2BGR)
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (640, 480))
    for i in range(20):
        frame = np.full((480, 640, 3), 128, np.uint8)
        frame[:, 40 + 2 * i:552 + 2 * i] = photo[:480]
        w.write(frame)
    w.release()
    return path


# --- The HTTP API's test client and the bundled photo's bytes (test_server.py, test_hardening_server.py) ---

@pytest.fixture(scope="module")
def client():
    """The default app under Starlette's TestClient; server exceptions come back as 500 answers."""
    from fastapi.testclient import TestClient

    from ferkit.apps.server import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def photo() -> bytes:
    from ferkit.demo import demo_photo

    return demo_photo().read_bytes()
