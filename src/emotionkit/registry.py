"""Name -> factory registries for detectors and classifiers (timm-style).

Plugins are found three ways, in this order of precedence:

1. :func:`register_detector` / :func:`register_classifier` calls at run time;
2. entry points of installed distributions, groups ``emotionkit.detectors`` and
   ``emotionkit.classifiers`` (``name = "package.module:FactoryOrClass"``);
3. the built-ins listed below.

A factory is any callable returning a plugin; ``create_*(name, **kwargs)`` calls it with
``kwargs``. Entry points are loaded only when their name is created, so listing names
never imports a plugin's dependencies.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import UnknownPluginError

T = TypeVar("T")

__all__ = [
    "create_classifier",
    "create_detector",
    "list_classifiers",
    "list_detectors",
    "register_classifier",
    "register_detector",
    "resolve_classifier",
    "resolve_detector",
]

_BUILTIN_DETECTORS = {
    "haar": "emotionkit.detectors.haar:HaarDetector",
    "mediapipe": "emotionkit.detectors.mediapipe:MediaPipeDetector",
    "none": "emotionkit.detectors.whole_image:WholeImageDetector",
}
_BUILTIN_CLASSIFIERS = {
    "fer-cnn": "emotionkit.classifiers.bundled:load_fer_cnn",
    "vgg19-3emo": "emotionkit.hub:load_vgg19_3emo",
}


class _Registry(Generic[T]):
    """Factories for one kind of plugin, keyed by name."""

    def __init__(self, kind: str, group: str, builtins: dict[str, str]) -> None:
        self.kind = kind
        self.group = group
        self._builtins = dict(builtins)
        self._registered: dict[str, Callable[..., T]] = {}

    def register(self, name: str, factory: Callable[..., T], *, overwrite: bool = False) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string, got {name!r}")
        if not name.strip() or name.startswith("hf://"):
            raise ValueError(f"{self.kind} name {name!r}: give a non-empty name that does not "
                             "start with hf:// (such names are hub specs)")
        if not callable(factory):
            raise TypeError(f"{self.kind} factory for {name!r} must be callable (a class or "
                            f"function returning the plugin), got {factory!r}")
        if not overwrite and name in self._registered:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass overwrite=True")
        self._registered[name] = factory

    def unregister(self, name: str) -> None:
        self._registered.pop(name, None)

    def names(self) -> list[str]:
        found = set(self._builtins) | set(self._entry_points()) | set(self._registered)
        return sorted(found)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def check(self, name: str) -> None:
        """Raise :class:`UnknownPluginError` unless ``name`` is available (imports nothing)."""
        if name not in self:
            raise self._unknown(name)

    def factory(self, name: str) -> Callable[..., T]:
        if name in self._registered:
            return self._registered[name]
        eps = self._entry_points()
        if name in eps:
            return self._load_entry_point(name, eps[name])
        if name in self._builtins:
            return _import_object(self._builtins[name])
        raise self._unknown(name)

    def _load_entry_point(self, name: str, entry_point: Any) -> Callable[..., T]:
        """The factory an entry point names; one that cannot be imported (its package or
        a dependency missing, the name not in its module) raises :class:`UnknownPluginError`."""
        try:
            loaded: Callable[..., T] = entry_point.load()
        except (ImportError, AttributeError) as exc:
            dist = entry_point.dist
            package = f"{dist.name} {dist.version}" if dist is not None else "its package"
            raise UnknownPluginError(
                f"{self.kind} {name!r} (entry point {entry_point.value} of {package}) cannot "
                f"be imported ({type(exc).__name__}: {exc}); reinstall or uninstall "
                f"{dist.name if dist is not None else 'that package'}"
            ) from exc
        return loaded

    def _unknown(self, name: str) -> UnknownPluginError:
        return UnknownPluginError(
            f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}"
        )

    def create(self, name: str, **kwargs: Any) -> T:
        return self.factory(name)(**kwargs)

    def _entry_points(self) -> dict[str, Any]:
        """Installed plugins by name. emotionkit's own entry points (its built-ins, declared
        for discovery by other tools) are left out, so that another distribution's plugin
        of the same name takes precedence over the built-in whatever the install order."""
        return {ep.name: ep for ep in entry_points(group=self.group)
                if ep.value != self._builtins.get(ep.name)}


def _import_object(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


_detectors: _Registry[Any] = _Registry("detector", "emotionkit.detectors", _BUILTIN_DETECTORS)
_classifiers: _Registry[Any] = _Registry(
    "classifier", "emotionkit.classifiers", _BUILTIN_CLASSIFIERS
)


def register_detector(name: str, factory: Callable[..., Any], *, overwrite: bool = False) -> None:
    """Register a face detector factory under ``name`` for this process."""
    _detectors.register(name, factory, overwrite=overwrite)


def register_classifier(
    name: str, factory: Callable[..., Any], *, overwrite: bool = False
) -> None:
    """Register an emotion classifier factory under ``name`` for this process."""
    _classifiers.register(name, factory, overwrite=overwrite)


def list_detectors() -> list[str]:
    """Names of all available detectors (built-in, entry points, registered)."""
    return _detectors.names()


def list_classifiers() -> list[str]:
    """Names of all available classifiers (built-in, entry points, registered)."""
    return _classifiers.names()


def create_detector(name: str, **kwargs: Any) -> Any:
    """Create the detector registered as ``name``; ``kwargs`` go to its factory."""
    return _detectors.create(name, **kwargs)


def create_classifier(name: str, **kwargs: Any) -> Any:
    """Create the classifier registered as ``name``; ``kwargs`` go to its factory."""
    return _classifiers.create(name, **kwargs)


def resolve_detector(detector: str | Any) -> Any:
    """A detector from a registered name, or ``detector`` itself if it has ``detect()``."""
    if isinstance(detector, str):
        return _detectors.create(detector)
    if not callable(getattr(detector, "detect", None)):
        raise TypeError(f"detector must be a name or have a detect() method, got {detector!r}")
    return detector


def _detector_to_send(detector: str | Any) -> Any:
    """``detector`` as another process (a worker, a Ray actor) is to get it: a name that
    process can create itself (built-in or entry-point plugin), checked here so that an
    unknown name fails in this process; else the detector built here (an object, or a name
    registered in this process only)."""
    if isinstance(detector, str) and detector not in _detectors._registered:
        _detectors.check(detector)
        return detector
    return resolve_detector(detector)


def resolve_classifier(classifier: str | Path | Any) -> Any:
    """A classifier from a registered name, a model file or directory path, an
    ``hf://OWNER/REPO[@REVISION]`` spec, or ``classifier`` itself if it has ``labels``,
    ``input_size``, ``crop_margin`` and ``predict()`` -- the rules of
    ``EmotionRecognizer(classifier=...)``."""
    if isinstance(classifier, str) and not classifier.strip():  # Path("") would be "."
        raise UnknownPluginError(
            f"empty classifier name {classifier!r}; pass a registered name "
            f"({', '.join(_classifiers.names())}) or a model file or directory path"
        )
    if isinstance(classifier, str) and classifier.startswith("hf://"):
        from .hub import load_hub_classifier

        return load_hub_classifier(classifier)
    if isinstance(classifier, Path) or (
        isinstance(classifier, str) and classifier not in _classifiers
    ):
        path = Path(classifier)
        if path.exists():
            from .classifiers.keras_model import load_classifier

            return load_classifier(path)
        raise UnknownPluginError(
            f"unknown classifier {str(classifier)!r}: not a registered name "
            f"({', '.join(_classifiers.names())}) and no such model file or directory"
        )
    if isinstance(classifier, str):
        return _classifiers.create(classifier)
    missing = [name for name in ("labels", "input_size", "crop_margin")
               if not hasattr(classifier, name)]
    if not callable(getattr(classifier, "predict", None)):
        missing.append("predict()")
    if missing:
        raise TypeError(
            "classifier must be a name, a path, or an object with labels, input_size, "
            f"crop_margin and predict() (see docs/plugins.md); {classifier!r} lacks "
            f"{', '.join(missing)}"
        )
    return classifier
