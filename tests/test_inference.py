"""Inference: ONNX export and parity, safe image reading, detection, the Recognizer and `ferkit predict`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ferkit.data.synthetic import synthetic_dataset
from ferkit.demo import demo_photo
from ferkit.evaluation.predict import predict_proba
from ferkit.export import export
from ferkit.inference import EmotionClassifier, ImageError, Recognizer, as_rgb, default_model_path, read_image
from ferkit.training import model_from_checkpoint, train
from ferkit.inference.detect import BlazeFaceDetector

ASTRONAUT_FACE = (173, 75, 104, 103)  # the BlazeFace box of the bundled photo's face
ASTRONAUT_HAAR = (177, 66, 95, 95)
SHARED_EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "examples"
FACES_IN_EXAMPLES = {"oarriaga_test_image.jpg": 6, "sr6033_group.jpg": 3, "wujie_images_1.jpg": 1,
                     "wujie_images_2.jpg": 1, "fer_justin.jpg": 1, "fer_no-faces.jpg": 0}


@pytest.fixture(scope="module")
def toy():
    return synthetic_dataset(per_class=(24, 8, 8), seed=5)


@pytest.fixture(scope="module")
def checkpoint(toy, tmp_path_factory):
    run = train(dataset=toy, project=str(tmp_path_factory.mktemp("runs")), progress=False, model="resnet_s",
                data="synthetic", epochs=2, batch_size=32, optimizer="adamw", lr=3e-3, threads=2)
    return run.run_dir / "best.pt"


@pytest.fixture(scope="module")
def onnx_fp32(checkpoint, toy):
    return export(checkpoint, data=toy)


def test_fp32_export_matches_pytorch(onnx_fp32, checkpoint, toy):
    assert onnx_fp32.max_abs_diff < 1e-4
    assert onnx_fp32.val_acc_export == pytest.approx(onnx_fp32.val_acc_torch, abs=1e-9)
    clf = EmotionClassifier(onnx_fp32.path)
    assert clf.classes[0] == "Angry" and len(clf.classes) == 7 and clf.metadata["precision"] == "fp32"
    model, ckpt = model_from_checkpoint(checkpoint)
    faces = toy.split("test").images
    ref = predict_proba(model, faces, ckpt["mean"], ckpt["std"])
    got = clf.predict_proba(faces, batch_size=5)  # several batches, a ragged last one
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4
    assert np.allclose(got.sum(1), 1, atol=1e-5)


def test_int8_export_is_smaller_and_close(checkpoint, toy, onnx_fp32, tmp_path):
    res = export(checkpoint, int8=True, data=toy, out=tmp_path / "m.int8.onnx", calibration_images=64)
    assert res.path.exists() and EmotionClassifier(res.path).metadata["precision"] == "int8"
    assert res.path.stat().st_size < 0.4 * onnx_fp32.path.stat().st_size  # int8 weights
    assert res.max_abs_diff < 0.5 and abs(res.val_acc_export - res.val_acc_torch) < 0.2


def test_int8_without_data_is_a_clear_error(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="Training images"):
        export(checkpoint, int8=True, out=tmp_path / "x.onnx")


def test_tflite_export_matches_pytorch(checkpoint, toy, tmp_path):
    """Runs where the optional extra is installed (pip install 'ferkit[tflite]')."""
    pytest.importorskip("litert_torch")
    res = export(checkpoint, format="tflite", data=toy, out=tmp_path / "m.tflite")
    assert res.max_abs_diff < 1e-4 and res.val_acc_export == pytest.approx(res.val_acc_torch, abs=1e-9)
    assert json.loads((tmp_path / "m.tflite.json").read_text())["classes"][3] == "Happy"


def test_tflite_without_the_extra_is_a_clear_error(checkpoint, tmp_path):
    import importlib.util

    if importlib.util.find_spec("litert_torch") is not None:
        pytest.skip("litert-torch is installed here")
    r = subprocess.run([sys.executable, "-m", "ferkit", "export", str(checkpoint), "--format", "tflite", "--out",
                        str(tmp_path / "m.tflite")], capture_output=True, text=True)
    assert r.returncode == 2 and "pip install 'ferkit[tflite]'" in r.stderr and "Traceback" not in r.stderr


def test_classifier_rejects_foreign_models_and_bad_shapes(onnx_fp32, tmp_path):
    import onnx

    m = onnx.load(str(onnx_fp32.path))
    del m.metadata_props[:]
    onnx.save(m, str(tmp_path / "foreign.onnx"))
    with pytest.raises(ValueError, match="not a ferkit ONNX model"):
        EmotionClassifier(tmp_path / "foreign.onnx")
    with pytest.raises(FileNotFoundError):
        EmotionClassifier(tmp_path / "missing.onnx")
    clf = EmotionClassifier(onnx_fp32.path)
    with pytest.raises(ValueError, match="48, 48"):
        clf.predict_proba(np.zeros((2, 64, 64), np.uint8))
    assert clf.predict_proba(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)


# --- reading images ------------------------------------------------------------------------------

def _rgb(h=40, w=60):
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0], a[:10, :, 1] = 200, 255
    return a


def test_image_modes_all_become_rgb(tmp_path):
    base = _rgb()
    Image.fromarray(base).save(tmp_path / "rgb.png")
    Image.fromarray(base).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(base).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(base).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(base).convert("L").save(tmp_path / "grey.png")
    Image.fromarray((np.arange(40 * 60, dtype=np.uint16).reshape(40, 60) * 27)).save(tmp_path / "grey16.png")
    for name in ("rgb.png", "rgba.png", "cmyk.jpg", "palette.png", "grey.png", "grey16.png"):
        a = read_image(tmp_path / name)
        assert a.dtype == np.uint8 and a.shape == (40, 60, 3), name
    assert np.array_equal(read_image(tmp_path / "rgb.png"), base)
    assert np.abs(read_image(tmp_path / "cmyk.jpg").astype(int) - base).max() < 40
    sixteen = read_image(tmp_path / "grey16.png")[..., 0]
    assert sixteen[0, 0] == 0 and sixteen.max() > 240  # scaled from 16 bits, not clipped


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    assert (read_image(tmp_path / "clear.png") == 255).all()


def test_exif_rotation_is_applied(tmp_path):
    im = Image.fromarray(_rgb(40, 60))
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    im.save(tmp_path / "rotated.jpg", exif=exif)
    assert read_image(tmp_path / "rotated.jpg").shape == (60, 40, 3)


@pytest.mark.parametrize("case,message", [
    ("empty", "empty file"), ("text", "not an image"), ("truncated", "truncated"), ("missing", "no such file"),
    ("huge", "over the limit"),
])
def test_bad_files_give_a_clear_error(tmp_path, case, message):
    path = tmp_path / f"{case}.jpg"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is not a photo\n")
    elif case == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[:3000])
    elif case == "huge":
        Image.fromarray(_rgb()).save(path)
    with pytest.raises(ImageError, match=message) as err:
        read_image(path, max_pixels=1000 if case == "huge" else 50_000_000)
    assert str(path) in str(err.value)


def test_arrays_in_either_colour_order():
    rgb = _rgb()
    assert np.array_equal(as_rgb(rgb), rgb)
    assert np.array_equal(as_rgb(rgb[..., ::-1], color="bgr"), rgb)
    assert as_rgb(rgb[..., 0]).shape == (40, 60, 3)
    assert np.array_equal(as_rgb(Image.fromarray(rgb)), rgb)
    with pytest.raises(ValueError):
        as_rgb(np.zeros((4, 4, 2), np.uint8))


# --- detection and recognition -------------------------------------------------------------------

@pytest.fixture(scope="module")
def recognizer(onnx_fp32):
    return Recognizer(model=onnx_fp32.path)


def test_the_bundled_photo_has_one_face(recognizer):
    faces = recognizer.predict(demo_photo())
    assert len(faces) == 1
    assert faces[0].box == ASTRONAUT_FACE
    assert set(faces[0].probs) == set(recognizer.classes) and sum(faces[0].probs.values()) == pytest.approx(1, abs=1e-5)
    (lx, ly), (rx, ry) = faces[0].landmarks[:2]  # eyes inside the box's upper half, left one first
    assert 173 < lx < rx < 277 and 75 < ly < 127 and 75 < ry < 127


def test_haar_detector_is_still_there(onnx_fp32):
    faces = Recognizer(model=onnx_fp32.path, detector="haar").predict(demo_photo())
    assert [f.box for f in faces] == [ASTRONAUT_HAAR] and faces[0].landmarks is None
    with pytest.raises(ValueError, match="unknown detector"):
        Recognizer(model=onnx_fp32.path, detector="yolo")


@pytest.mark.parametrize("detector", ["blazeface", "haar"])
def test_no_face_is_an_empty_result(onnx_fp32, detector):
    rec = Recognizer(model=onnx_fp32.path, detector=detector)
    assert rec.predict(np.full((480, 640, 3), 127, np.uint8)) == []
    assert rec.predict(np.zeros((10, 10), np.uint8)) == []


@pytest.mark.parametrize("canvas", [(480, 640), (640, 480), (517, 333), (300, 1000), (160, 120)])
def test_blazeface_finds_the_face_on_any_frame_shape(canvas):
    """The photo scaled onto landscape, portrait, odd-sized and small canvases: one face, at the
    photo's face box carried through the same scale and offset (BlazeFace runs at a different input
    shape for each: 256x192, 192x256, ...). The box's size depends a little on the face's size in
    pixels (the model's regression), so the size gets 20%."""
    photo = read_image(demo_photo())
    ch, cw = canvas
    k = min(ch, cw) / photo.shape[0]
    side = round(photo.shape[0] * k)
    frame = np.full((ch, cw, 3), 90, np.uint8)
    oy, ox = (ch - side) // 2, (cw - side) // 2
    frame[oy:oy + side, ox:ox + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    found = BlazeFaceDetector().detect(frame)
    assert len(found) == 1
    x, y, w, h = ASTRONAUT_FACE
    bx, by, bw, bh = found[0].box
    assert abs(bx + bw / 2 - ox - (x + w / 2) * k) <= max(3, 0.06 * w * k)
    assert abs(by + bh / 2 - oy - (y + h / 2) * k) <= max(3, 0.06 * h * k)
    assert 0.8 < bw / (w * k) < 1.2 and 0.8 < bh / (h * k) < 1.2


def test_every_face_in_the_example_photos(recognizer):
    """BlazeFace finds exactly the faces of ../shared/examples (Haar: 11 of 14 and a false one)."""
    if not SHARED_EXAMPLES.is_dir():
        pytest.skip("../shared/examples is absent")
    found = {name: len(recognizer.predict(SHARED_EXAMPLES / name)) for name in FACES_IN_EXAMPLES}
    assert found == FACES_IN_EXAMPLES


@pytest.mark.parametrize("angle", [-25, 15, 25])
def test_alignment_levels_a_tilted_face(recognizer, angle):
    """The face tilted by some degrees, once aligned, looks much more like the upright face's crop
    (correlation of pixels) than the same tilted face cropped without alignment."""
    from ferkit.inference.recognizer import face_crop

    photo = read_image(demo_photo())
    tilt = cv2.warpAffine(photo, cv2.getRotationMatrix2D((225, 120), angle, 1.0), (512, 512),
                          borderMode=cv2.BORDER_REPLICATE)
    grey, tilt_grey = (cv2.cvtColor(p, cv2.COLOR_RGB2GRAY) for p in (photo, tilt))
    upright, tilted = recognizer.detector.detect(photo)[0], recognizer.detector.detect(tilt)[0]
    a, b, c = (x.astype(float).ravel() for x in (face_crop(grey, upright), face_crop(tilt_grey, tilted),
                                                 face_crop(tilt_grey, tilted, align=False)))
    aligned, unaligned = np.corrcoef(a, b)[0, 1], np.corrcoef(a, c)[0, 1]
    assert aligned > 0.6 and aligned > unaligned + 0.25, (aligned, unaligned)


def test_thirty_faces(recognizer, onnx_fp32):
    """30 faces in one 864x715 picture: Haar finds all; BlazeFace, at 256 px for the whole picture
    (faces about 30 px there), finds 29 of them."""
    photo = read_image(demo_photo())
    x, y, w, h = ASTRONAUT_FACE
    tile = photo[y - 20:y + h + 20, x - 20:x + w + 20]
    grid = np.concatenate([np.concatenate([tile] * 6, axis=1)] * 5, axis=0)
    assert len(Recognizer(model=onnx_fp32.path, detector="haar").predict(grid)) == 30
    faces = recognizer.predict(grid)
    assert len(faces) >= 29 and len({f.box for f in faces}) == len(faces)


def test_colour_order_and_precropped_faces(recognizer, onnx_fp32):
    photo = read_image(demo_photo())
    a = recognizer.predict(photo)
    b = recognizer.predict(cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), color="bgr")
    assert a == b
    a = Recognizer(model=onnx_fp32.path, detector="haar").predict(photo)
    crop = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[66:161, 177:272], (48, 48), interpolation=cv2.INTER_AREA)
    face = recognizer.predict(crop, detect=False)[0]
    assert face.box == (0, 0, 48, 48)
    assert face.probs == a[0].probs  # the same 48x48 crop, so the same probabilities


def test_predict_batch_equals_one_by_one(recognizer):
    photo = read_image(demo_photo())
    batch = recognizer.predict_batch([photo, np.zeros((50, 50, 3), np.uint8), photo[:, ::-1]])
    assert [len(f) for f in batch] == [1, 0, 1]
    assert batch[0] == recognizer.predict(photo)
    assert batch[2][0].probs == pytest.approx(recognizer.predict(photo[:, ::-1])[0].probs, abs=1e-6)


def test_shipped_model_finds_the_astronaut_happy():
    """The default model in the package: no path, no download, and it gets an obvious smile right."""
    assert default_model_path().is_file()
    faces = Recognizer().predict(demo_photo())
    assert len(faces) == 1 and faces[0].emotion == "Happy" and faces[0].score > 0.5


# --- the command ---------------------------------------------------------------------------------

def test_predict_command_goes_on_after_bad_files(onnx_fp32, tmp_path):
    Image.open(demo_photo()).save(tmp_path / "a.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (tmp_path / "sub").mkdir()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(tmp_path / "sub" / "blank.jpg")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "ferkit", "predict", str(tmp_path), "--weights", str(onnx_fp32.path),
                        "--out", str(out), "--quiet"], capture_output=True, text=True, env=os.environ)
    assert r.returncode == 1, r.stderr  # one file failed
    assert "broken.jpg" in r.stderr and "Traceback" not in r.stderr
    assert "1 face(s) in 2 image(s)" in r.stdout and "1 file(s) failed" in r.stdout
    rows = (out / "predictions.csv").read_text().splitlines()
    assert rows[0].startswith("file,face,x,y,w,h,emotion,score,Angry") and len(rows) == 2
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [len(r.get("faces", [])) for r in records] == [1, 0, 0]
    assert "error" in records[1] and records[2]["faces"] == []
    assert (out / "a.jpg").exists() and (out / "blank.jpg").exists()


def test_predict_command_with_no_readable_image_fails(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ferkit", "predict", str(tmp_path / "nothing*.jpg"), "--out",
                        str(tmp_path / "o"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 1 and "no such file" in r.stderr


# --- video ---------------------------------------------------------------------------------------

from ferkit.apps.video import video_file  # noqa: E402
from ferkit.inference.recognizer import VideoError  # noqa: E402
from ferkit.inference.smooth import FaceTracker  # noqa: E402
from ferkit.inference.recognizer import Face  # noqa: E402


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 20-frame 640x480 mp4 of the bundled photo drifting right by 2 px a frame."""
    photo = cv2.cvtColor(read_image(demo_photo()), cv2.COLOR_RGB2BGR)
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (640, 480))
    for i in range(20):
        frame = np.full((480, 640, 3), 128, np.uint8)
        frame[:, 40 + 2 * i:552 + 2 * i] = photo[:480]
        w.write(frame)
    w.release()
    return path


def _csv_rows(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_video_writes_mp4_csv_timeline_and_summary(recognizer, clip, tmp_path):
    res = video_file(clip, out=tmp_path, recognizer=recognizer, progress=False)
    assert res.complete and res.frames_read == 20 and res.frames_processed == 20
    rows = _csv_rows(tmp_path / "clip.csv")
    assert sorted({int(r["frame"]) for r in rows}) == list(range(20))
    astronaut = [r for r in rows if r["track"] == "0"]  # the face, followed across every frame (Haar adds a stray box or two)
    assert [int(r["frame"]) for r in astronaut] == list(range(20))
    assert int(astronaut[-1]["x"]) > int(astronaut[0]["x"])  # the box moves with the face
    cap = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 640
    cap.release()
    assert (tmp_path / "clip_timeline.png").stat().st_size > 0
    summary = json.loads((tmp_path / "clip_summary.json").read_text())
    assert summary["complete"] and summary["last_frame"] == 19 and summary["faces"] == len(rows)


def test_video_stride_recognises_every_nth_frame_and_keeps_all_in_the_mp4(recognizer, clip, tmp_path):
    res = video_file(clip, out=tmp_path, recognizer=recognizer, stride=3, progress=False)
    assert res.frames_processed == 7 and res.frames_read == 20
    assert sorted({int(r["frame"]) for r in _csv_rows(tmp_path / "clip.csv")}) == list(range(0, 20, 3))
    cap = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    cap.release()


def test_interrupted_video_keeps_what_was_written(recognizer, clip, tmp_path, monkeypatch):
    real = Recognizer.predict
    calls = {"n": 0}

    def predict(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 11:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Recognizer, "predict", predict)
    with pytest.raises(KeyboardInterrupt):
        video_file(clip, out=tmp_path, recognizer=recognizer, progress=False)
    rows = _csv_rows(tmp_path / "clip.csv")
    assert sorted({int(r["frame"]) for r in rows}) == list(range(10))  # a valid CSV up to the last finished frame
    summary = json.loads((tmp_path / "clip_summary.json").read_text())
    assert summary["complete"] is False and summary["last_frame"] == 9
    assert (tmp_path / "clip_timeline.png").exists()


@pytest.mark.parametrize("case", ["missing", "empty", "text", "truncated"])
def test_bad_videos_give_a_clear_error(recognizer, clip, tmp_path, case):
    path = tmp_path / f"{case}.mp4"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("not a video\n" * 100)
    elif case == "truncated":
        path.write_bytes(clip.read_bytes()[:len(clip.read_bytes()) // 2])
    with pytest.raises(VideoError, match=str(path.name)):
        video_file(path, out=tmp_path / "out", recognizer=recognizer, progress=False)


def test_missing_camera_is_a_clear_error(recognizer):
    with pytest.raises(VideoError, match="camera 97"):
        next(recognizer.process_video(97))


def _face(box, probs):
    names = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
    p = dict(zip(names, probs))
    top = max(p, key=p.get)
    return Face(box, p, top, p[top])


def test_tracker_smooths_and_keeps_identities():
    t = FaceTracker(alpha=0.5, max_missed=1)
    happy, sad = [0, 0, 0, 1.0, 0, 0, 0], [0, 0, 0, 0, 1.0, 0, 0]
    a = t.update([_face((0, 0, 50, 50), happy), _face((200, 0, 50, 50), sad)])
    assert [f.track for f in a] == [0, 1]
    b = t.update([_face((210, 2, 50, 50), happy), _face((4, 0, 50, 50), sad)])  # they swapped places in the list
    assert [f.track for f in b] == [1, 0]
    assert b[1].probs["Happy"] == pytest.approx(0.5) and b[1].probs["Sad"] == pytest.approx(0.5)
    assert b[0].raw_probs["Happy"] == 1.0
    t.update([])
    t.update([])  # both tracks missed twice > max_missed: dropped
    c = t.update([_face((0, 0, 50, 50), sad)])
    assert c[0].track == 2 and c[0].emotion == "Sad"
    with pytest.raises(ValueError):
        FaceTracker(alpha=0)


# --- webcam --------------------------------------------------------------------------------------

def test_webcam_headless_prints_each_recognised_frame(onnx_fp32, clip, tmp_path):
    r = subprocess.run([sys.executable, "-m", "ferkit", "webcam", "--headless", "--source", str(clip), "--weights",
                        str(onnx_fp32.path), "--out", str(tmp_path), "--stride", "5"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("frame ")]
    assert [ln.split()[1] for ln in lines] == ["0", "5", "10", "15"]
    assert all("face 0 " in ln for ln in lines)
    assert (tmp_path / "clip.csv").exists() and (tmp_path / "clip_summary.json").exists()


def test_webcam_without_camera_or_display_is_a_clear_error(onnx_fp32, tmp_path):
    r = subprocess.run([sys.executable, "-m", "ferkit", "webcam", "--headless", "--camera", "97", "--weights",
                        str(onnx_fp32.path), "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "camera 97: cannot be opened" in r.stderr and "Traceback" not in r.stderr
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    r = subprocess.run([sys.executable, "-m", "ferkit", "webcam", "--weights", str(onnx_fp32.path), "--out",
                        str(tmp_path)], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "use --headless" in r.stderr


def test_webcam_window_shows_annotated_frames(onnx_fp32, clip, tmp_path):
    """Under a virtual X server (Debian's xvfb), the window opens, shows frames and closes on q."""
    import shutil
    import time

    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    display = ":57"
    server = subprocess.Popen(["Xvfb", display, "-screen", "0", "800x600x24"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        code = f"""
import os, numpy as np
from PIL import ImageGrab
from ferkit.apps import webcam as w
shown = []
real = w.LiveWindow.show
def show(self, vf):
    ok = real(self, vf)
    shown.append(vf.index)
    if len(shown) == 8:
        ImageGrab.grab(xdisplay="{display}").save(r"{tmp_path / 'window.png'}")
        self.root.event_generate("q")  # the user quits
        self.root.update()
    return self.open
w.LiveWindow.show = show
res = w.webcam(source=r"{clip}", model=r"{onnx_fp32.path}", out=r"{tmp_path}")
print(len(shown), res.complete, res.frames_read)
"""
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "DISPLAY": display})
    finally:
        server.terminate()
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["8", "False", "8"]  # stopped by the user after 8 frames, not complete
    from ferkit.inference.draw import COLOURS

    shot = np.asarray(Image.open(tmp_path / "window.png").convert("RGB")).astype(int)
    label_pixels = sum(int((np.abs(shot - np.array(c)).max(-1) < 8).sum()) for c in COLOURS.values())
    assert shot[:480, :640].std() > 20 and label_pixels > 200  # the frame, with a coloured box, label and bars
