"""Video: annotated mp4, CSV, timeline and summary; strides, interruption, bad videos."""

import json
import re

import cv2
import numpy as np
import pytest

from ferkit.apps.video import video_file
from ferkit.errors import ConfigError
from ferkit.inference import Recognizer
from ferkit.inference.capture import open_capture
from ferkit.inference.recognizer import VideoError


def _csv_rows(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _first_frame(path):
    """The video's first frame, BGR uint8."""
    cap = cv2.VideoCapture(str(path))
    frame = cap.read()[1]
    cap.release()
    return frame


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
    written, source = _first_frame(tmp_path / "clip.mp4").astype(int), _first_frame(clip)
    drawn = np.abs(written - source).max(-1) > 60  # beyond codec noise
    x, y, w, h = (int(astronaut[0][k]) for k in "xywh")
    assert drawn.sum() > 1000 and drawn[y, x:x + w].mean() > 0.5 and drawn[y:y + h, x].mean() > 0.5  # the box drawn
    assert (tmp_path / "clip_timeline.png").stat().st_size > 0
    summary = json.loads((tmp_path / "clip_summary.json").read_text())
    assert summary["complete"] and summary["last_frame"] == 19 and summary["faces"] == len(rows)


def test_video_tta_and_the_summary_of_settings(onnx_fp32, clip, tmp_path):
    """``video_file(tta="flip")``: the faces' probabilities are the flip-averaged Recognizer's, and the summary
    records the model, detector, alignment and TTA that made them."""
    video_file(clip, out=tmp_path, model=onnx_fp32.path, tta="flip", smoothing=1.0, max_frames=2, save_video=False,
               progress=False)
    summary = json.loads((tmp_path / "clip_summary.json").read_text())
    assert (summary["model"], summary["detector"], summary["align"], summary["tta"]) == (
        onnx_fp32.path.name, "blazeface", True, "flip")
    frame = cv2.cvtColor(_first_frame(clip), cv2.COLOR_BGR2RGB)
    want = Recognizer(model=onnx_fp32.path, tta="flip").predict(frame)[0]
    row = next(r for r in _csv_rows(tmp_path / "clip.csv") if r["frame"] == "0" and r["track"] == "0")
    assert float(row[want.emotion]) == pytest.approx(want.score, abs=1e-3)
    video_file(clip, out=tmp_path / "ens", model=f"small,{onnx_fp32.path}", max_frames=1, save_video=False,
               progress=False)
    summary = json.loads((tmp_path / "ens" / "clip_summary.json").read_text())
    assert summary["model"] == f"resnet_s_fer2013.onnx+{onnx_fp32.path.name}"  # an ensemble: its members


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


@pytest.fixture(scope="module")
def shipped():
    return Recognizer()


def test_output_over_the_source_video_is_refused(shipped, clip, tmp_path):
    """``ferkit video x.mp4 --out .`` wrote the annotated mp4 over x.mp4; without the mp4 the rest may go beside it."""
    source = tmp_path / "clip.mp4"
    source.write_bytes(clip.read_bytes())
    with pytest.raises(ConfigError, match=f"{re.escape(str(source))} would be written over .*give another --out"):
        video_file(source, out=tmp_path, recognizer=shipped, progress=False)
    assert source.read_bytes() == clip.read_bytes() and sorted(tmp_path.iterdir()) == [source]
    res = video_file(source, out=tmp_path, recognizer=shipped, max_frames=1, save_video=False, progress=False)
    assert res.complete and (tmp_path / "clip.csv").exists() and source.read_bytes() == clip.read_bytes()


@pytest.mark.parametrize("option, flag", [({"stride": 0}, "--stride"), ({"smoothing": 0.0}, "--smooth"),
                                          ({"smoothing": 1.5}, "--smooth"), ({"smoothing": float("nan")}, "--smooth"),
                                          ({"max_frames": 0}, "--max-frames")])
def test_bad_stream_options_are_refused_before_anything_is_opened(clip, tmp_path, option, flag):
    """Each names its flag, before the model is loaded or a file written (--max-frames 0 was taken, and the video
    then reported damaged)."""
    with pytest.raises(ConfigError, match=f"^{flag} must be"):
        video_file(clip, out=tmp_path / "o", model=tmp_path / "no-such-model.onnx", progress=False, **option)
    assert not (tmp_path / "o").exists()


def test_an_mp4_that_cannot_be_written_is_an_error(shipped, clip, tmp_path):
    """A VideoWriter that did not open (here: a folder in the mp4's place) is an error, not a run without its mp4."""
    (tmp_path / "clip.mp4").mkdir()
    with pytest.raises(VideoError, match="clip.mp4: cannot be written"):
        video_file(clip, out=tmp_path, recognizer=shipped, max_frames=2, progress=False)
    assert json.loads((tmp_path / "clip_summary.json").read_text())["complete"] is False


def test_capture_is_released_when_the_csv_cannot_be_opened(shipped, clip, tmp_path, monkeypatch):
    from ferkit.apps import video

    opened = []
    monkeypatch.setattr(video, "open_capture", lambda source: opened.append(open_capture(source)) or opened[-1])
    (tmp_path / "clip.csv").mkdir()
    with pytest.raises(IsADirectoryError):
        video_file(clip, out=tmp_path, recognizer=shipped, progress=False)
    assert len(opened) == 1 and not opened[0].isOpened()
