"""Tracking faces across frames and smoothing their probabilities."""

import pytest

from ferkit.inference.recognizer import Face
from ferkit.inference.smooth import FaceTracker


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
    slow = FaceTracker(alpha=0.25)  # alpha weighs the new frame: a sad frame only nudges a happy track
    slow.update([_face((0, 0, 50, 50), happy)])
    d = slow.update([_face((2, 0, 50, 50), sad)])
    assert d[0].probs["Happy"] == pytest.approx(0.75) and d[0].probs["Sad"] == pytest.approx(0.25)
    assert d[0].emotion == "Happy" and d[0].score == pytest.approx(0.75)
    with pytest.raises(ValueError, match=r"alpha must be in"):
        FaceTracker(alpha=0)
