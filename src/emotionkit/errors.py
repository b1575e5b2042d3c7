"""Exceptions raised by emotionkit.

Every error the library raises for bad input *data* (an unreadable image, video or
dataset, a missing or invalid model, an unknown name, a failed training run) derives from
:class:`EmotionKitError`, so callers (and the CLI) can report it as one line without a
traceback. Subclasses for one area live beside their code: ``emotionkit.video.VideoError``,
``emotionkit.training.DatasetError`` and ``emotionkit.training.TrainingError``. Invalid
*arguments* from the calling program (a recognizer ``batch_size`` below 1, a detector
confidence outside 0..1, a wrong type) raise Python's ``ValueError`` / ``TypeError``, as
in the standard library; the trainers' options are the exception: ``Trainer(...)`` reports
them as ``TrainingError``, like the other problems of a training run.
"""

from __future__ import annotations

__all__ = ["EmotionKitError", "ImageLoadError", "ModelLoadError", "UnknownPluginError"]


class EmotionKitError(Exception):
    """Base class of all emotionkit errors; ``str(err)`` is a one-line message."""


class ImageLoadError(EmotionKitError, ValueError):
    """An input could not be read or decoded as an image."""


class UnknownPluginError(EmotionKitError, LookupError):
    """A detector or classifier name is not registered."""


class ModelLoadError(EmotionKitError, OSError):
    """A model file or model directory is missing, invalid or incompatible."""
