"""The model hub: classifiers downloaded from the Hugging Face Hub, pinned and verified.

A classifier on the hub is a repository holding ``config.json`` and the model file it
names, exactly the directory ``emotionkit train`` writes. They are loaded either by a
registered name (``"vgg19-3emo"``: repository, pinned commit and the sha256 of every file
are listed in this module) or by ``"hf://OWNER/REPO[@REVISION]"``.

Downloads go through :func:`huggingface_hub.hf_hub_download`, so its cache and its
environment variables apply: ``HF_HOME`` / ``HF_HUB_CACHE`` (where files are cached),
``HF_HUB_OFFLINE=1`` (use the cache only), ``HF_TOKEN`` (private repositories) and
``HF_ENDPOINT`` (a self-hosted mirror). emotionkit reads these variables when a model
is loaded, not only when ``huggingface_hub`` is imported.

Every downloaded file is checked after download and on every load: against the pinned
sha256 for registered models, otherwise against the hash the hub reported for it (the
sha256 of large/LFS files, the git blob id of small files). A mismatch deletes the cached
file and raises :class:`~emotionkit.errors.ModelLoadError`.

Model files are always loaded with Keras ``safe_mode`` on (see
:func:`emotionkit.classifiers.load_classifier`): nothing in a downloaded file is executed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ._text import first_line, reason
from ._version import __version__
from .classifiers.config import CHECKPOINT_DIR, CONFIG_NAME, ModelConfig
from .errors import ModelLoadError, UnknownPluginError

__all__ = [
    "SPEC_PREFIX",
    "HubModel",
    "PushResult",
    "cache_dir",
    "download_model",
    "file_sha256",
    "get_hub_model",
    "is_cached",
    "list_hub_models",
    "load_hub_classifier",
    "load_vgg19_3emo",
    "make_model_card",
    "parse_spec",
    "push_model",
    "register_hub_model",
    "unregister_hub_model",
]

SPEC_PREFIX = "hf://"
"""Prefix of classifier specs that name a hub repository: ``hf://OWNER/REPO[@REVISION]``."""

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# the hub's rules for repository ids, as huggingface_hub.utils.validate_repo_id checks them
_REPO_PART_RE = re.compile(r"^\w(?:[\w.-]*\w)?$", re.ASCII)
_REPO_NAME_MAX = 96
_METRICS_NAME = "metrics.json"
_CARD_NAME = "README.md"
_HASH_CHUNK = 1 << 20


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if (len(parts) != 2 or not all(_REPO_PART_RE.fullmatch(p) for p in parts)
            or len(parts[1]) > _REPO_NAME_MAX or "--" in repo_id or ".." in repo_id
            or repo_id.endswith(".git")):
        raise ValueError(
            f"invalid repository id {repo_id!r} (OWNER/REPO: letters, digits, '_', '-' and "
            f"'.', neither starting nor ending with '-' or '.', no '--' or '..', no '.git' "
            f"ending, REPO at most {_REPO_NAME_MAX} characters)"
        )


@dataclass(frozen=True)
class HubModel:
    """A classifier published on the hub under a registered name.

    Attributes:
        name: the name users pass (``EmotionRecognizer(classifier=name)``).
        repo_id: the Hugging Face Hub repository, ``OWNER/REPO``.
        revision: the pinned commit (40 hex digits), or ``None``: the repository's
            ``main``, whose files must then still have the pinned sha256s (a model whose
            upload commit is not known yet; see :attr:`published`).
        files: file name -> expected sha256 (hex) of every file to download:
            ``config.json`` and the model file it names at least. Empty while no version
            is published (then ``revision`` must be ``None`` too).
        labels: the classifier's output labels.
        size_bytes: total download size, if known.
        description: one line for ``emotionkit models list``.
        bundled: the model also ships in the package (the hub is its update channel).
    """

    name: str
    repo_id: str
    revision: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    size_bytes: int | None = None
    description: str = ""
    bundled: bool = False

    def __post_init__(self) -> None:
        _check_repo_id(self.repo_id)
        if self.revision is not None and not _COMMIT_RE.fullmatch(self.revision):
            raise ValueError(f"{self.name}: revision must be a full 40-hex commit id")
        for filename, digest in self.files.items():
            if not _SHA256_RE.fullmatch(digest):
                raise ValueError(f"{self.name}: sha256 of {filename} must be 64 hex digits")
        if (self.files or self.revision is not None) and CONFIG_NAME not in self.files:
            raise ValueError(f"{self.name}: files must give the sha256 of {CONFIG_NAME} and "
                             "of the model file it names (a pinned revision needs them too)")

    @property
    def published(self) -> bool:
        """Whether a version is pinned: the sha256 of its files (``config.json`` at least),
        and normally the commit they were uploaded in. Without a ``revision`` the files of
        ``main`` are used, and only if they still have those sha256s."""
        return CONFIG_NAME in self.files

    @property
    def spec(self) -> str:
        """The ``hf://`` spec of the pinned version (or of the repository's ``main``)."""
        return f"{SPEC_PREFIX}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


_HUB_MODELS: dict[str, HubModel] = {
    model.name: model
    for model in (
        HubModel(
            name="fer-cnn",
            repo_id="emotionkit/fer-cnn",
            labels=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
            description="small CNN for the 7 FER2013 emotions; bundled with the package",
            bundled=True,
        ),
        HubModel(
            name="vgg19-3emo",
            repo_id="emotionkit/vgg19-3emo",
            labels=("angry", "happy", "sad"),
            description="VGG19 transfer model for angry/happy/sad (no version published yet)",
        ),
    )
}
_BUILTIN_HUB_MODELS = frozenset(_HUB_MODELS)


@dataclass(frozen=True)
class PushResult:
    """What :func:`push_model` uploaded: the repository, its new commit and the files."""

    repo_id: str
    commit: str
    commit_url: str
    files: tuple[str, ...]

    @property
    def spec(self) -> str:
        """The pinned ``hf://`` spec to load exactly this upload."""
        return f"{SPEC_PREFIX}{self.repo_id}@{self.commit}"


# -- registry -----------------------------------------------------------------------------
def register_hub_model(model: HubModel, *, overwrite: bool = False) -> None:
    """Register ``model`` under ``model.name`` for this process.

    The name then works everywhere a classifier name does
    (``EmotionRecognizer(classifier=model.name)``, ``--classifier``, ``emotionkit models``).
    A name already taken by a hub model or any classifier needs ``overwrite=True``.
    """
    from .registry import _classifiers, register_classifier

    if model.name in _BUILTIN_HUB_MODELS:
        raise ValueError(f"hub model {model.name!r} is built in; choose another name")
    if not overwrite and (model.name in _HUB_MODELS or model.name in _classifiers):
        raise ValueError(f"{model.name!r} is already a registered hub model or classifier; "
                         "pass overwrite=True to replace it")
    register_classifier(model.name, partial(load_hub_classifier, model.name), overwrite=True)
    _HUB_MODELS[model.name] = model


def unregister_hub_model(name: str) -> None:
    """Remove a model registered with :func:`register_hub_model` (no-op if unknown).

    Raises:
        ValueError: ``name`` is a built-in hub model (``fer-cnn``, ``vgg19-3emo``).
    """
    from .registry import _classifiers

    if name in _BUILTIN_HUB_MODELS:
        raise ValueError(f"hub model {name!r} is built in and cannot be unregistered")
    if _HUB_MODELS.pop(name, None) is not None:
        _classifiers.unregister(name)


def list_hub_models() -> list[HubModel]:
    """All registered hub models, sorted by name."""
    return [_HUB_MODELS[name] for name in sorted(_HUB_MODELS)]


def get_hub_model(name: str) -> HubModel:
    """The registered hub model ``name``.

    Raises:
        UnknownPluginError: no model of that name is registered.
    """
    try:
        return _HUB_MODELS[name]
    except KeyError:
        raise UnknownPluginError(
            f"unknown hub model {name!r}; registered: {', '.join(sorted(_HUB_MODELS))} "
            f"(or use {SPEC_PREFIX}OWNER/REPO[@REVISION])"
        ) from None


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``"hf://OWNER/REPO[@REVISION]"`` into ``(repo_id, revision or None)``.

    Raises:
        ModelLoadError: ``spec`` is not of that form.
    """
    if not spec.startswith(SPEC_PREFIX):
        raise ModelLoadError(f"{spec!r}: not a hub spec; expected {SPEC_PREFIX}OWNER/REPO[@REV]")
    repo_id, _, revision = spec[len(SPEC_PREFIX):].partition("@")
    try:
        _check_repo_id(repo_id)
    except ValueError as exc:
        raise ModelLoadError(f"{spec!r}: {exc}; expected {SPEC_PREFIX}OWNER/REPO[@REV]") from None
    if "@" in spec[len(SPEC_PREFIX):] and not revision:
        raise ModelLoadError(f"{spec!r}: empty revision after '@'")
    return repo_id, revision or None


# -- settings read at call time -------------------------------------------------------------
def cache_dir() -> Path:
    """The directory where hub downloads are cached (``HF_HUB_CACHE``, else
    ``HF_HOME/hub``, else huggingface_hub's default ``~/.cache/huggingface/hub``).

    Raises:
        ModelLoadError: the default is needed and ``HF_ENDPOINT`` is not an http(s) URL
            (huggingface_hub cannot be imported then).
    """
    if os.environ.get("HF_HUB_CACHE"):
        raw = os.environ["HF_HUB_CACHE"]
    elif os.environ.get("HF_HOME"):
        raw = os.path.join(os.environ["HF_HOME"], "hub")
    else:
        raw = _hub_constants().HF_HUB_CACHE
    return Path(os.path.expandvars(os.path.expanduser(raw)))


_DEFAULT_ENDPOINT = "https://huggingface.co"


def _endpoint() -> str:
    """The hub's URL (``HF_ENDPOINT``, else huggingface_hub's default), without a final /.

    Raises:
        ModelLoadError: ``HF_ENDPOINT`` is not an ``http(s)://HOST`` URL.
    """
    raw = os.environ.get("HF_ENDPOINT") or _hub_constants().ENDPOINT or _DEFAULT_ENDPOINT
    _check_endpoint(raw)
    return raw.rstrip("/")


def _check_endpoint(raw: str | None) -> None:
    """Raise :class:`ModelLoadError` unless ``raw`` is empty or an ``http(s)://HOST`` URL."""
    if not raw:
        return
    try:
        parts = urlsplit(raw)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and (
            parts.port is None or parts.port > 0)
        if valid:
            str(parts.hostname).encode("idna")  # an empty label ("hub..co"), ...
    except ValueError:  # a bad IPv6 address or port; UnicodeError: a bad host name
        valid = False
    if not valid:
        raise ModelLoadError(f"HF_ENDPOINT={raw!r} is not an http(s) URL; set it to the hub "
                             f"or mirror's address ({_DEFAULT_ENDPOINT} if unset)")


def _hub_constants() -> Any:
    """``huggingface_hub.constants``, once ``HF_ENDPOINT`` is checked: importing
    huggingface_hub with a malformed one fails with a ValueError of ``urlsplit``."""
    _check_endpoint(os.environ.get("HF_ENDPOINT"))
    from huggingface_hub import constants

    return constants


def _offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(_hub_constants().is_offline_mode())


# -- download -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Source:
    """What to download: a repository at a revision, with known hashes if pinned."""

    label: str  # how errors name it: a registered name or the spec
    repo_id: str
    revision: str | None
    sha256: Mapping[str, str]


def _resolve_source(name_or_spec: str, revision: str | None) -> _Source | Path:
    """The source of ``name_or_spec``, or the bundled model directory."""
    if revision is not None and not str(revision).strip():
        raise ModelLoadError(f"{name_or_spec}: empty revision {revision!r}; give a branch, "
                             "tag or commit, or none for the default")
    if name_or_spec.startswith(SPEC_PREFIX):
        repo_id, spec_revision = parse_spec(name_or_spec)
        if revision is not None and spec_revision is not None and revision != spec_revision:
            raise ModelLoadError(
                f"{name_or_spec}: revision given twice ({spec_revision!r} and {revision!r})"
            )
        chosen = revision or spec_revision
        label = f"{SPEC_PREFIX}{repo_id}@{chosen}" if chosen else name_or_spec
        return _Source(label, repo_id, chosen, {})
    model = get_hub_model(name_or_spec)
    if revision is not None and revision != model.revision:
        return _Source(f"{SPEC_PREFIX}{model.repo_id}@{revision}", model.repo_id, revision, {})
    if model.published:
        return _Source(model.name, model.repo_id, model.revision, dict(model.files))
    if model.bundled:
        from .classifiers.bundled import bundled_fer_cnn_dir

        return bundled_fer_cnn_dir()
    raise ModelLoadError(
        f"{model.name!r}: no published version is pinned in emotionkit {__version__} yet "
        f"(hub repository {model.repo_id}); load a revision you trust with "
        f"classifier='{SPEC_PREFIX}{model.repo_id}@REVISION', or pass a local model path"
    )


def download_model(
    name_or_spec: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    local_files_only: bool | None = None,
) -> Path:
    """Download (or find in the cache) a hub model; returns its local model directory.

    Args:
        name_or_spec: a registered name (``"vgg19-3emo"``) or ``"hf://OWNER/REPO[@REV]"``.
            For a bundled model (``"fer-cnn"``) the package's own directory is returned.
        revision: branch, tag or commit to use instead of the pinned / given one.
        token: hub token for private repositories; ``None`` uses ``HF_TOKEN`` or the
            token saved by ``hf auth login``.
        local_files_only: use the cache only; ``None`` follows ``HF_HUB_OFFLINE``.

    Returns:
        A directory holding ``config.json`` and the model file, ready for
        :func:`emotionkit.classifiers.load_classifier`.

    Raises:
        ModelLoadError: not found, not reachable and not cached, a token the hub refuses,
            a cache that cannot be written or read, hash mismatch, a malformed
            ``HF_ENDPOINT``, or not an emotionkit model repository. Arguments of a wrong
            type raise ``TypeError`` (or what huggingface_hub raises for them).
        UnknownPluginError: an unknown registered name.
    """
    source = _resolve_source(name_or_spec, revision)
    if isinstance(source, Path):
        return source
    offline = _offline() if local_files_only is None else local_files_only
    config_path = _fetch(source, CONFIG_NAME, source.revision, token=token, offline=offline)
    config = ModelConfig.read(config_path)
    model_file = config.model_file
    if model_file.startswith("/") or ".." in Path(model_file).parts:
        raise ModelLoadError(
            f"{source.label}: {CONFIG_NAME} names model file {model_file!r} outside the repository"
        )
    if source.sha256 and model_file not in source.sha256:
        raise ModelLoadError(
            f"{source.label}: {CONFIG_NAME} names model file {model_file!r}, which has no "
            f"pinned sha256 in its registration (HubModel.files)"
        )
    # Pin the other files to the commit config.json came from, so a branch that moves
    # between two requests cannot mix versions.
    commit = config_path.parent.name if _COMMIT_RE.fullmatch(config_path.parent.name) else None
    names = [model_file, *(f for f in source.sha256 if f not in (CONFIG_NAME, model_file))]
    for filename in names:
        _fetch(source, filename, commit or source.revision, token=token, offline=offline)
    if not (config_path.parent / model_file).is_file():  # cache without snapshot folders
        raise ModelLoadError(f"{source.label}: {model_file} is not beside its {CONFIG_NAME}")
    return config_path.parent


def is_cached(name_or_spec: str, *, revision: str | None = None) -> bool:
    """Whether the model can be loaded without network (cached or bundled)."""
    try:
        directory = download_model(name_or_spec, revision=revision, local_files_only=True)
    except (ModelLoadError, UnknownPluginError):
        return False
    return (directory / CONFIG_NAME).is_file()


def _fetch(
    source: _Source, filename: str, revision: str | None, *, token: str | bool | None,
    offline: bool,
) -> Path:
    """Download one file through huggingface_hub's cache and verify its hash."""
    endpoint = _endpoint()  # before importing huggingface_hub, which fails on a bad one
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{source.repo_id}/{filename} (revision {revision or 'main'})"
    try:
        with _hub_warnings_hidden():
            path = Path(hf_hub_download(
                source.repo_id, filename, revision=revision, cache_dir=cache_dir(),
                endpoint=endpoint, token=token, local_files_only=offline,
                library_name="emotionkit", library_version=__version__,
            ))
    except LocalEntryNotFoundError as exc:
        if offline:
            raise ModelLoadError(
                f"{where} is not in the model cache {cache_dir()} and offline mode is on "
                f"(HF_HUB_OFFLINE=1); download it first with "
                f"`emotionkit models download {source.label}` while online, "
                f"or pass a local model directory or .keras file"
            ) from exc
        raise ModelLoadError(
            f"{where}: cannot download from {endpoint} ({reason(exc.__cause__ or exc)}) and "
            f"it is not in the model cache {cache_dir()}; check the network or HF_ENDPOINT, "
            f"or pass a local model directory or .keras file"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelLoadError(
            f"{source.repo_id}: repository not found on {endpoint}; check the name, and for a "
            f"private repository set HF_TOKEN or run `hf auth login`"
        ) from exc
    except RevisionNotFoundError as exc:
        raise ModelLoadError(
            f"{source.repo_id}: revision {revision!r} not found on {endpoint}"
        ) from exc
    except EntryNotFoundError as exc:
        raise ModelLoadError(
            f"{where}: no such file in the repository; an emotionkit model repository holds "
            f"{CONFIG_NAME} and the model file it names (see `emotionkit models push`)"
        ) from exc
    except _request_errors() as exc:
        if _is_file_system_error(exc):
            raise ModelLoadError(
                f"{where}: cannot write to the model cache {cache_dir()} ({reason(exc)}); "
                f"make it writable or set HF_HUB_CACHE to a directory that is"
            ) from exc
        if refused := _refused_token(exc):
            raise ModelLoadError(f"{where}: {endpoint} {refused}") from exc
        raise ModelLoadError(f"{where}: download from {endpoint} failed ({reason(exc)})") from exc
    _verify(path, source.sha256.get(filename), where)
    return path


_FILE_SYSTEM_ERRNOS = frozenset(
    getattr(errno, name) for name in ("EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT",
                                      "ENOTDIR", "EISDIR", "EEXIST", "ENAMETOOLONG")
    if hasattr(errno, name)
)


def _request_errors() -> tuple[type[BaseException], ...]:
    """What a failed hub request, or a cache file that cannot be written, raises:
    ``OSError`` (huggingface_hub's HTTP errors are ``OSError`` too) and the HTTP client's
    base error (httpx's ``HTTPError``: connection failures and timeouts; it is no
    ``OSError``), found among the bases of ``HfHubHTTPError`` whichever client
    huggingface_hub uses. Programming errors (``TypeError``, ...) are not among them."""
    from huggingface_hub.errors import HfHubHTTPError

    client = tuple(base for base in HfHubHTTPError.__mro__[1:]
                   if base.__name__ == "HTTPError" and not base.__module__.startswith(
                       "huggingface_hub"))
    return (OSError, *client)


def _is_file_system_error(exc: BaseException) -> bool:
    """An error of the local file system (permissions, full disk), not of a request."""
    return type(exc).__module__ == "builtins" and getattr(exc, "errno", None) in (
        _FILE_SYSTEM_ERRNOS)


def _refused_token(exc: BaseException) -> str | None:
    """``"refused the token (401: REASON); ..."`` when the hub answered 401 or 403."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status not in (401, 403):
        return None
    detail = first_line(str(getattr(exc, "server_message", None) or ""))
    return (f"refused the token ({status}{': ' + detail if detail else ''}); pass one with "
            "access to the repository (token=/--token, HF_TOKEN or `hf auth login`)")


class _QuietHubLog(logging.Filter):
    """``with _hub_warnings_hidden():`` hides huggingface_hub's warnings (records below
    ERROR) that the calling thread logs meanwhile: it warns once per retry (``Retrying in
    1s [Retry 1/5].``) where a failed download ends in one error of ours. Other threads'
    hub warnings are kept and no logger's level changes; the filter stays on the hub's
    loggers and passes everything while no download is running."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._depth: dict[int, int] = {}  # thread ident -> nested quiet blocks

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or record.thread not in self._depth

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._lock:
            self._attach()
            self._depth[me] = self._depth.get(me, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._depth[me] -= 1
                if not self._depth[me]:
                    del self._depth[me]

    def _attach(self) -> None:
        """Put this filter on every huggingface_hub logger (a logger's filters see only
        the records logged on it, not those of its child loggers)."""
        names = [name for name in list(logging.root.manager.loggerDict)
                 if name == "huggingface_hub" or name.startswith("huggingface_hub.")]
        for name in names:
            logger = logging.getLogger(name)
            if self not in logger.filters:
                logger.addFilter(self)


_hub_warnings_hidden = _QuietHubLog()



def _verify(path: Path, expected_sha256: str | None, where: str) -> None:
    """Check ``path`` against the pinned sha256, or the hash the hub reported (the blob's
    file name in the cache: sha256 for LFS files, git blob sha1 for small ones)."""
    blob = path.resolve()
    expected, kind = expected_sha256, "sha256"
    if expected is None:
        if _SHA256_RE.fullmatch(blob.name):
            expected = blob.name
        elif _COMMIT_RE.fullmatch(blob.name):
            expected, kind = blob.name, "git blob sha1"
        else:  # no hash known (cache without symlinks): nothing to compare against
            warnings.warn(f"{where}: not checked against the hub's hash (this cache has no "
                          "symbolic links, so the hash is not kept); pin files by sha256 "
                          "(a registered HubModel) to have them checked", stacklevel=3)
            return
    try:
        data_hash = _hash_file(blob, "git" if kind == "git blob sha1" else "sha256")
    except OSError as exc:
        raise ModelLoadError(f"{where}: cannot read the cached file {blob} ({reason(exc)})"
                             ) from exc
    if data_hash == expected:
        return
    try:
        for stale in {path, blob}:
            stale.unlink(missing_ok=True)
        removed = "the file was deleted from the cache, download it again"
    except OSError as exc:
        removed = (f"the cached copy could not be deleted ({exc.strerror or reason(exc)}): "
                   f"delete {blob} and download it again")
    if expected_sha256 is not None:
        repeats = ("the hub file is not the version this emotionkit pins (upgrade emotionkit "
                   f"or load a revision you trust with {SPEC_PREFIX}OWNER/REPO@REVISION)")
    else:
        repeats = ("the file the hub serves is not the one its hash names (a broken mirror "
                   "or proxy: check HF_ENDPOINT)")
    raise ModelLoadError(
        f"{where}: {kind} mismatch, expected {expected} but the downloaded file has "
        f"{data_hash}; {removed}; if this repeats, {repeats}"
    )


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of the file at ``path`` (read in chunks)."""
    return _hash_file(Path(path), "sha256")


def _hash_file(path: Path, kind: str) -> str:
    digest = hashlib.sha1() if kind == "git" else hashlib.sha256()
    if kind == "git":
        digest.update(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- loading ----------------------------------------------------------------------------------
def load_hub_classifier(name_or_spec: str, **kwargs: Any) -> Any:
    """Download (or find cached) and load a hub classifier.

    ``name_or_spec`` is a registered name or ``"hf://OWNER/REPO[@REVISION]"``; ``kwargs``
    go to :class:`~emotionkit.classifiers.KerasClassifier`. The model is loaded with Keras
    ``safe_mode`` on.
    """
    from .classifiers.keras_model import load_classifier

    return load_classifier(download_model(name_or_spec), **kwargs)


def load_vgg19_3emo(**kwargs: Any) -> Any:
    """Load the ``vgg19-3emo`` classifier from the hub (registry factory)."""
    return load_hub_classifier("vgg19-3emo", **kwargs)


# -- publishing -------------------------------------------------------------------------------
def make_model_card(directory: str | Path, repo_id: str) -> str:
    """A ``README.md`` model card for the model directory ``directory``.

    Its YAML front matter marks the repository as an emotionkit model
    (``library_name: emotionkit``); the labels, input and metrics are read from the
    directory's ``config.json`` and ``metrics.json`` (if present), never made up.
    """
    directory = Path(directory)
    config = ModelConfig.read(directory / CONFIG_NAME)
    metrics = _read_metrics(directory / _METRICS_NAME)
    front = [
        "---",
        "library_name: emotionkit",
        "pipeline_tag: image-classification",
        "tags:",
        "- emotion-recognition",
        "- keras",
        "labels:",
        *(f"- {json.dumps(label)}" for label in config.labels),
    ]
    # Hugging Face metric ids, named by the endings of our keys (val.accuracy, val.macro_f1)
    metric_ids = [hf_id for hf_id in ("accuracy", "f1")
                  if any(name.endswith(hf_id) for name in metrics)]
    if metric_ids:
        front += ["metrics:", *(f"- {hf_id}" for hf_id in metric_ids)]
    front.append("---")
    height, width = config.input_size
    body = [
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
        "A facial emotion classifier for the emotionkit Python library"
        + (f" (trained with emotionkit {version})." if (version := config.extra.get(
            "emotionkit_version")) else "."),
        "",
        f"- Labels: {', '.join(config.labels)}",
        f"- Input: {height}x{width}, {config.channels} channel(s)",
        f"- Architecture: {config.architecture or 'not recorded'}",
        f"- Model file: `{config.model_file}` (Keras; loaded with `safe_mode=True`)",
        "",
    ]
    body += _card_metrics(metrics)
    body += [
        "## Usage",
        "",
        "```python",
        "from emotionkit import EmotionRecognizer",
        "",
        f'recognizer = EmotionRecognizer(classifier="{SPEC_PREFIX}{repo_id}")',
        "```",
        "",
        "```console",
        f"$ emotionkit detect --classifier {SPEC_PREFIX}{repo_id} photo.jpg",
        "```",
        "",
    ]
    return "\n".join(front + body)


def _card_metrics(metrics: dict[str, Any]) -> list[str]:
    """The model card's "Metrics" section: the scores of ``metrics.json`` (dataset sizes,
    supports and speeds left out), with ``val.name`` (the validation data) as its caption."""
    scores = {name: value for name, value in metrics.items()
              if isinstance(value, (int, float)) and not name.endswith(_NOT_SCORES)}
    if not scores:
        return []
    data = metrics.get("val.name")
    lines = ["## Metrics", "",
             f"From `{_METRICS_NAME}` written by training"
             + (f", on {data} ({metrics.get('val.n', '?')} images)" if data else "") + ":",
             "", "| metric | value |", "| --- | --- |"]
    return [*lines, *(f"| {name} | {value} |" for name, value in scores.items()), ""]


_NOT_SCORES = (".n", ".support", "images_per_s", "epochs_run")


def _read_metrics(path: Path) -> dict[str, Any]:
    """Scalar metrics of a ``metrics.json`` file, nested keys joined with dots."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: not a valid JSON metrics file ({exc})") from exc
    return dict(_flatten(data, "")) if isinstance(data, dict) else {}


def _flatten(data: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{name}.")
        elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
            yield name, round(value, 4) if isinstance(value, float) else value


def _files_to_push(directory: Path) -> list[Path]:
    """The directory's files, without hidden files and folders (caches) and without the
    training checkpoint (``checkpoint/``: weights backup, optimizer state, a copy of the
    model), which only ``emotionkit train --resume`` reads.

    Raises:
        OSError: a folder cannot be read (its files would be left out).
    """
    found: list[Path] = []
    for folder, subfolders, names in os.walk(directory, onerror=_raise):
        top = Path(folder) == directory
        subfolders[:] = [name for name in subfolders
                         if not name.startswith(".") and not (top and name == CHECKPOINT_DIR)]
        found += [Path(folder, name) for name in names if not name.startswith(".")]
    return sorted(path for path in found if path.is_file())


def _raise(exc: OSError) -> None:
    raise exc


def push_model(
    directory: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    check: bool = True,
) -> PushResult:
    """Upload a trained model directory to the hub as one commit on ``main``.

    The repository is created if needed (``private`` applies only then). Every file of
    ``directory`` is uploaded (hidden ones and the training ``checkpoint/`` excepted) plus
    a generated ``README.md`` model card unless the directory has its own.

    Args:
        directory: a model directory as written by ``emotionkit train``.
        repo_id: ``OWNER/REPO`` on the hub (``HF_ENDPOINT`` selects a mirror).
        private: create the repository as private.
        token: hub token with write access; ``None`` uses ``HF_TOKEN`` or the saved login.
        commit_message: defaults to ``"Upload emotionkit model"``.
        check: load the model first (Keras ``safe_mode``) to refuse broken uploads.

    Raises:
        ModelLoadError: the directory is not a loadable model directory or cannot be read,
            ``HF_ENDPOINT`` is malformed, the hub refused the token, or the upload failed.
    """
    directory = Path(directory)
    try:
        _check_repo_id(repo_id)
    except ValueError as exc:
        raise ModelLoadError(f"{exc}; expected OWNER/REPO") from None
    endpoint = _endpoint()  # before importing huggingface_hub, which fails on a bad one
    from huggingface_hub import CommitOperationAdd, HfApi

    if not directory.is_dir():
        raise ModelLoadError(f"{directory}: not a model directory")
    config = ModelConfig.read(directory / CONFIG_NAME)
    if check:
        from .classifiers.keras_model import load_classifier

        load_classifier(directory)
    elif not (directory / config.model_file).is_file():
        raise ModelLoadError(f"{directory / config.model_file}: model file not found")
    try:  # CommitOperationAdd reads each file (its hash)
        operations = [
            CommitOperationAdd(path_in_repo=p.relative_to(directory).as_posix(),
                               path_or_fileobj=str(p))
            for p in _files_to_push(directory)
        ]
    except OSError as exc:
        raise ModelLoadError(f"cannot push {directory}: cannot read {exc.filename} "
                             f"({exc.strerror or reason(exc)})") from exc
    if not (directory / _CARD_NAME).is_file():
        card = make_model_card(directory, repo_id).encode("utf-8")
        operations.append(CommitOperationAdd(path_in_repo=_CARD_NAME, path_or_fileobj=card))
    api = HfApi(endpoint=endpoint, token=token, library_name="emotionkit",
                library_version=__version__)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.create_commit(
            repo_id, operations, commit_message=commit_message or "Upload emotionkit model",
            repo_type="model",
        )
    except _request_errors() as exc:
        if refused := _refused_token(exc):
            raise ModelLoadError(f"push to {repo_id}: {endpoint} {refused}") from exc
        raise ModelLoadError(f"push to {repo_id} on {endpoint} failed ({reason(exc)}); "
                             "check the network, HF_ENDPOINT and the token") from exc
    return PushResult(
        repo_id=repo_id, commit=str(info.oid), commit_url=str(info.commit_url),
        files=tuple(op.path_in_repo for op in operations),
    )
