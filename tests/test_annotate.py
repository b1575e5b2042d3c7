"""``draw_faces`` and ``Face.top_emotion`` on faces a plugin detector or classifier may
give: float boxes, NaN probabilities."""

from __future__ import annotations

import math

import numpy as np

from emotionkit.annotate import draw_faces
from emotionkit.results import Face

BOX = (177, 82, 96, 96)  # the astronaut's face


def test_a_nan_probability_is_never_the_top_emotion(astronaut_bgr: np.ndarray) -> None:
    """A broken plugin classifier's NaN came out as the top emotion when it was the first
    label (max() keeps its first item against NaN), and was drawn as ``angry nan``."""
    broken = Face(BOX, None, {"angry": math.nan, "happy": 0.7, "sad": 0.3})
    assert broken.top_emotion == "happy"
    assert Face(BOX, None, {"happy": 0.7, "angry": math.nan, "sad": 0.3}).top_emotion == "happy"
    clean = Face(BOX, None, {"happy": 0.7, "sad": 0.3})
    assert np.array_equal(draw_faces(astronaut_bgr, [broken]), draw_faces(astronaut_bgr, [clean]))


def test_float_boxes_are_drawn_rounded(astronaut_bgr: np.ndarray) -> None:
    """A plugin detector's float box (which cropping and ``to_dict`` take) used to be an
    OpenCV 'Overload resolution failed' error."""
    emotions = {"happy": 0.7, "sad": 0.3}
    drawn = draw_faces(astronaut_bgr, [Face((176.6, 81.8, 96.4, np.float64(95.7)), 0.9,
                                            emotions)])
    assert np.array_equal(drawn, draw_faces(astronaut_bgr, [Face(BOX, 0.9, emotions)]))
    assert not np.array_equal(drawn, astronaut_bgr)
