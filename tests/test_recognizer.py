"""Detection and recognition: the Recognizer on photos, both detectors, alignment, batches."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from ferkit.core.runtime import ModelError
from ferkit.demo import demo_photo
from ferkit.inference import Recognizer, default_model_path, read_image, shipped_models
from ferkit.inference.detect import BlazeFaceDetector

ASTRONAUT_FACE = (173, 75, 104, 103)  # the BlazeFace box of the bundled photo's face
ASTRONAUT_HAAR = (177, 66, 95, 95)
SHARED_EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "examples"
FACES_IN_EXAMPLES = {"oarriaga_test_image.jpg": 6, "sr6033_group.jpg": 3, "wujie_images_1.jpg": 1,
                     "wujie_images_2.jpg": 1, "fer_justin.jpg": 1, "fer_no-faces.jpg": 0}


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


@pytest.mark.parametrize("name", sorted(shipped_models()))
def test_every_shipped_model_loads_by_name_and_sees_the_smile(name):
    """``--model NAME`` for each model in the package: its file is there, its classes are a label set's,
    and it gets the astronaut's obvious smile right."""
    from ferkit.data import FER2013_CLASSES, FERPLUS_CLASSES

    assert shipped_models()[name].is_file()
    recognizer = Recognizer(model=name)
    assert recognizer.classifier.path == shipped_models()[name]
    assert list(recognizer.classes) in (list(FER2013_CLASSES), list(FERPLUS_CLASSES))
    faces = recognizer.predict(demo_photo())
    assert len(faces) == 1 and faces[0].emotion in ("Happy", "Happiness") and faces[0].score > 0.5  # FER2013, FER+


def test_an_unknown_model_name_lists_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="shipped models: default"):
        Recognizer(model="flagshp")
    (tmp_path / "default").write_bytes(b"not onnx")  # a file of that name in the current folder wins
    with pytest.raises(ModelError, match="default: not an ONNX model"):
        Recognizer(model="default")


def test_fer_plus_names_are_drawn_in_the_colours_of_their_fer2013_names():
    """A FER+ model says Happiness where FER2013's says Happy: the box is the same colour."""
    from ferkit.inference.draw import COLOURS, annotate
    from ferkit.inference.faces import Face

    canvas = np.zeros((200, 200, 3), np.uint8)
    box = (40, 60, 100, 100)  # its bottom edge: row 160, columns 40-140
    for fer2013, ferplus in (("Happy", "Happiness"), ("Sad", "Sadness"), ("Angry", "Anger")):
        drawn = annotate(canvas, [Face(box, {ferplus: 1.0}, ferplus, 1.0)])
        assert (drawn[160, 50:130] == COLOURS[fer2013]).all(), ferplus
    drawn = annotate(canvas, [Face(box, {"Contempt": 1.0}, "Contempt", 1.0)])
    assert (drawn[160, 50:130] == COLOURS["Contempt"]).all()
    assert COLOURS["Contempt"] not in [COLOURS[c] for c in ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise",
                                                             "Neutral")]


def test_classifier_tta_averages_the_views_that_evaluation_averages(onnx_fp32):
    """``predict_proba(faces, tta=...)`` is the mean over the views PyTorch's evaluation cuts (its own code):
    the face and its mirror image, or ten crops resized back."""
    import torch

    from ferkit.core.classifier import EmotionClassifier
    from ferkit.core.predict import tta_views
    from ferkit.errors import ConfigError

    clf = EmotionClassifier(onnx_fp32.path)
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    x = torch.from_numpy(faces).float().unsqueeze(1)
    for tta in ("none", "flip", "tencrop"):
        want = np.mean([clf.predict_proba(v.squeeze(1).numpy()) for v in tta_views(x, tta)], axis=0)
        assert np.allclose(clf.predict_proba(faces, tta=tta), want, atol=1e-5), tta
    assert not np.allclose(clf.predict_proba(faces, tta="flip"), clf.predict_proba(faces), atol=1e-3)
    with pytest.raises(ConfigError, match="tta must be one of"):
        clf.predict_proba(faces, tta="twentycrop")


def test_recognizer_tta(onnx_fp32):
    """``Recognizer(tta="flip")``: each face's probabilities are the mean of its crop's and its mirror image's."""
    from ferkit.errors import ConfigError

    photo = read_image(demo_photo())
    crop = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[66:161, 177:272], (48, 48), interpolation=cv2.INTER_AREA)
    plain = Recognizer(model=onnx_fp32.path)
    flip = Recognizer(model=onnx_fp32.path, tta="flip")
    got = flip.predict(crop, detect=False)[0].probs
    a, b = plain.predict(crop, detect=False)[0].probs, plain.predict(crop[:, ::-1].copy(), detect=False)[0].probs
    assert got == pytest.approx({c: (a[c] + b[c]) / 2 for c in a}, abs=1e-6)
    faces = flip.predict(photo)
    assert len(faces) == 1 and faces[0].box == plain.predict(photo)[0].box  # the same detection, other probabilities
    with pytest.raises(ConfigError, match="tta must be one of"):
        Recognizer(model=onnx_fp32.path, tta="twentycrop")


def test_an_ensemble_averages_its_members(onnx_fp32):
    """``Recognizer(model="A,B")`` (or a list): each face's probabilities are the mean of the members', each over
    the same TTA views, as ``ferkit evaluate A B --tta ...`` averages them; its name joins the members'."""
    from ferkit.core.classifier import EnsembleClassifier, load_classifier

    ensemble = Recognizer(model=f"small,{onnx_fp32.path}", tta="flip")
    assert isinstance(ensemble.classifier, EnsembleClassifier)
    assert [m.path for m in ensemble.classifier.members] == [shipped_models()["small"], onnx_fp32.path]
    assert ensemble.classifier.name == f"resnet_s_fer2013+{onnx_fp32.path.stem}"
    photo = read_image(demo_photo())
    (face,) = ensemble.predict(photo)
    members = [Recognizer(model=m, tta="flip").predict(photo)[0].probs for m in ("small", onnx_fp32.path)]
    assert face.probs == pytest.approx({c: (members[0][c] + members[1][c]) / 2 for c in face.probs}, abs=1e-6)
    assert face.probs != pytest.approx(members[0], abs=1e-3)
    assert Recognizer(model=["small", onnx_fp32.path], tta="flip").predict(photo)[0].probs == face.probs
    single = load_classifier("small")
    assert not isinstance(single, EnsembleClassifier) and single.members == [single]


def test_an_ensemble_refuses_members_that_cannot_be_averaged():
    from ferkit.errors import ConfigError

    with pytest.raises(ModelError, match="cannot be averaged with resnet_sw_fer2013.int8.onnx: its classes"):
        Recognizer(model="default,ferplus")  # 8 FER+ classes against FER2013's 7
    with pytest.raises(ConfigError, match="an empty name"):
        Recognizer(model="default,")
    with pytest.raises(FileNotFoundError, match="flagshp: no such ONNX model"):
        Recognizer(model="default,flagshp")
