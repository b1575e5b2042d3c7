"""Exceptions raised by emotionkit.

Every error the library raises on bad input derives from :class:`EmotionKitError`,
so callers (and the CLI) can report it as one line without a traceback.
"""

from __future__ import annotations


class EmotionKitError(Exception):
    """Base class of all emotionkit errors; ``str(err)`` is a one-line message."""


class ImageLoadError(EmotionKitError, ValueError):
    """An input could not be read or decoded as an image."""


class UnknownPluginError(EmotionKitError, LookupError):
    """A detector or classifier name is not registered."""


class ModelLoadError(EmotionKitError, OSError):
    """A model file or model directory is missing, invalid or incompatible."""
