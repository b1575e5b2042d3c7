"""Image loading and conversion.

Everything inside emotionkit works on ``numpy.ndarray`` images in **BGR** channel
order with dtype ``uint8`` and shape ``(height, width, 3)`` -- the convention of
``cv2.imread`` and ``cv2.VideoCapture``. This module turns every supported input
into that form.
"""

from __future__ import annotations

import io as _stdio
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image as PILImage  # ~7 ms; a real class makes ImageInput resolvable

from ._text import elide_middle
from .errors import ImageLoadError

ImageInput = str | Path | bytes | bytearray | np.ndarray | PILImage.Image
"""Anything :func:`load_image` accepts."""

__all__ = ["IMAGE_SUFFIXES", "ImageInput", "crop", "expand_box", "load_image", "to_bgr",
           "to_gray"]

IMAGE_SUFFIXES = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".gif", ".tif", ".tiff",
    ".webp", ".avif", ".ppm", ".pgm", ".pbm", ".pnm", ".jp2", ".j2k", ".tga",
    ".heic", ".heif",  # listed so that they are reported (no decoder) rather than skipped
})
"""File name endings (lower case) of image files: what directory walks (``emotionkit
detect DIR``, :class:`~emotionkit.training.FolderDataset`) pick up. HEIC/HEIF photos are
listed but need a HEIF decoder for Pillow (``pillow-heif``); without one, loading them
raises :class:`~emotionkit.errors.ImageLoadError` saying so."""

_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
_EXIF_ORIENTATION = 0x0112


def load_image(source: ImageInput) -> np.ndarray:
    """Load ``source`` as a BGR ``uint8`` array of shape ``(H, W, 3)``, values 0-255.

    Accepted inputs:

    * ``str`` / ``pathlib.Path``: an image file; EXIF orientation is honoured; 16-bit
      files keep their top 8 bits; alpha is dropped; of an animated or multi-page file
      (GIF, WebP, APNG, TIFF) the first frame is taken; images of more than twice Pillow's
      ``PIL.Image.MAX_IMAGE_PIXELS`` (about 179 megapixels) are refused; between that and
      ``MAX_IMAGE_PIXELS`` they load with Pillow's ``DecompressionBombWarning`` (a Python
      warning: filter it with ``warnings.filterwarnings("ignore",
      category=PIL.Image.DecompressionBombWarning)``; the CLI does).
    * ``bytes`` / ``bytearray``: an encoded image file (JPEG, PNG, ...), as for a path.
    * ``numpy.ndarray``: ``(H, W)`` grayscale, ``(H, W, 1)``, ``(H, W, 3)`` **BGR** or
      ``(H, W, 4)`` BGRA (alpha dropped); ``uint8``, float in ``[0, 1]`` (or
      ``[0, 255]``), or any dtype :func:`to_bgr` takes. A ``uint8`` BGR array is returned
      as it is (not copied).
    * ``PIL.Image.Image``: converted from its own mode (RGB, L, RGBA, P, ...) to BGR; of an
      animated image, the frame it is at (``seek``); EXIF orientation is honoured, as for
      a path.

    Pixel values are taken as stored: embedded colour profiles (ICC) are not applied.

    Raises:
        ImageLoadError: the file is missing, unreadable, empty, cut short (truncated) or
            not a decodable image; the array has an unsupported shape or dtype; or the PIL
            image cannot be read (its file closed or truncated, an unsupported mode).
    """
    if isinstance(source, (str, Path)):
        if isinstance(source, str) and not source.strip():
            raise ImageLoadError(f"empty file name {source!r}; pass the path of an image file")
        return _load_path(Path(source))
    if isinstance(source, (bytes, bytearray)):
        return _decode_bytes(bytes(source), what="image bytes")
    if isinstance(source, np.ndarray):
        return to_bgr(source)
    if isinstance(source, PILImage.Image):
        return _pil_to_bgr(source)
    raise ImageLoadError(
        f"unsupported image input of type {type(source).__name__}; "
        "pass a path, bytes, a numpy array or a PIL image"
    )


def to_bgr(array: np.ndarray) -> np.ndarray:
    """Convert a grayscale, BGR or BGRA array into a contiguous BGR ``uint8`` array.

    Accepts the arrays :func:`load_image` accepts: ``(H, W)``, ``(H, W, 1)``,
    ``(H, W, 3)`` BGR or ``(H, W, 4)`` BGRA; ``uint8``, float in ``[0, 1]`` (or
    ``[0, 255]``, told apart by the largest finite value; NaN becomes 0), 16-bit (top 8
    bits kept; either byte order), other integers (clipped to ``0..255``) or bool. The
    result's values are 0-255; a BGR ``uint8`` array that is contiguous already is
    returned as it is (not copied).

    Raises:
        ImageLoadError: not a numpy array, no pixels, or an unsupported shape or dtype.
    """
    img = _to_uint8(_checked_array(array))
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 3:
        return np.ascontiguousarray(img)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    raise ImageLoadError(
        f"unsupported image array shape {array.shape}; expected (H, W), (H, W, 3) or (H, W, 4)"
    )


def to_gray(image_bgr: np.ndarray) -> np.ndarray:
    """Return the ``uint8`` grayscale ``(H, W)`` version of a BGR (or already gray) image.

    Takes every array :func:`to_bgr` takes (BGRA, ``(H, W, 1)``, float, 16-bit, ...) and
    converts it the same way; a gray ``uint8`` array is returned as it is.

    Raises:
        ImageLoadError: not a numpy array, no pixels, or an unsupported shape or dtype.
    """
    img = _checked_array(image_bgr)
    if img.ndim == 2:
        return _to_uint8(img)
    return cv2.cvtColor(to_bgr(img), cv2.COLOR_BGR2GRAY)


def expand_box(
    box: tuple[int, int, int, int], margin: float, width: int, height: int
) -> tuple[int, int, int, int]:
    """Grow ``box`` = ``(x, y, w, h)`` (pixels, origin top-left) by ``margin`` (a fraction
    of its width and height) on every side.

    The result is clipped to an image of ``width`` x ``height`` pixels.
    """
    x, y, w, h = box
    dx, dy = round(w * margin), round(h * margin)
    return clip_box((x - dx, y - dy, w + 2 * dx, h + 2 * dy), width, height)


def clip_box(
    box: tuple[float, float, float, float], width: int, height: int
) -> tuple[int, int, int, int]:
    """Round ``(x, y, w, h)`` (pixels) to ints and clip it to a ``width`` x ``height`` image."""
    x0 = max(0, round(box[0]))
    y0 = max(0, round(box[1]))
    x1 = min(width, round(box[0] + box[2]))
    y1 = min(height, round(box[1] + box[3]))
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def crop(image: np.ndarray, box: tuple[int, int, int, int], margin: float = 0.0) -> np.ndarray:
    """Cut ``box`` (``(x, y, w, h)`` pixels, grown by ``margin`` as in :func:`expand_box`)
    out of ``image``: a view of it (not a copy), with its channel order and dtype."""
    h_img, w_img = image.shape[:2]
    x, y, w, h = expand_box(box, margin, w_img, h_img)
    return image[y : y + h, x : x + w]


def _load_path(path: Path) -> np.ndarray:
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as exc:  # e.g. "File name too long", "Permission denied" on a parent
        raise ImageLoadError(
            f"{elide_middle(str(path))}: cannot open this path ({exc.strerror or exc}); "
            "check the path"
        ) from exc
    if not exists:
        raise ImageLoadError(f"{path}: no such file; check the path")
    if is_dir:
        raise ImageLoadError(f"{path}: is a directory, not an image file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        advice = "check the file's permissions" if isinstance(exc, PermissionError) else (
            "check the file and its disk")
        raise ImageLoadError(f"{path}: cannot read file ({exc.strerror}); {advice}") from exc
    return _decode_bytes(data, what=str(path))


def _checked_array(array: Any) -> np.ndarray:
    """``array`` itself if it is a non-empty numpy array, else one clear ImageLoadError."""
    if not isinstance(array, np.ndarray):
        raise ImageLoadError(
            f"expected a numpy image array, got {type(array).__name__}; convert it with "
            "numpy.asarray(), or load paths, bytes and PIL images with emotionkit.load_image()"
        )
    if array.size == 0:
        raise ImageLoadError(f"empty image array of shape {array.shape} (zero pixels)")
    return array


def _decode_bytes(data: bytes, what: str) -> np.ndarray:
    if not data:
        raise ImageLoadError(f"{what}: file is empty (0 bytes); expected an image")
    decoded = _decode_with_pil(data, what)
    if decoded is not None:
        return decoded
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None and _is_heif(data):
        raise ImageLoadError(
            f"{what}: a HEIC/HEIF photo, which needs a HEIF decoder; convert it to JPEG or "
            "PNG, or `pip install pillow-heif` and call pillow_heif.register_heif_opener()"
        )
    if decoded is None:
        raise ImageLoadError(
            f"{what}: not a readable image (unknown format or corrupt data); "
            "use a JPEG, PNG, BMP, TIFF or WebP file"
        )
    return to_bgr(decoded)


def _is_heif(data: bytes) -> bool:
    """Whether ``data`` starts like a HEIC/HEIF file: an ISO-BMFF ``ftyp`` box with a HEIF
    brand, and no AVIF brand (AVIF files may carry the generic ``mif1`` too)."""
    if data[4:8] != b"ftyp":
        return False
    size = int.from_bytes(data[:4], "big")
    brands = [data[i:i + 4] for i in range(8, min(max(size, 16), 64), 4)]
    return brands[0] in _HEIF_BRANDS and not {b"avif", b"avis"} & set(brands)


def _decode_with_pil(data: bytes, what: str) -> np.ndarray | None:
    """``data`` decoded by Pillow, upright; ``None`` where Pillow cannot decode it (then
    OpenCV is tried). Raises :class:`ImageLoadError` for an image too large to decode or
    cut short.

    Pillow warns (``DecompressionBombWarning``) for 90-180 megapixel images; the warning
    is left to the caller's ``warnings`` filters: silencing it here per call
    (``warnings.catch_warnings``) would not be thread-safe. The CLI hides it.
    """
    try:
        with PILImage.open(_stdio.BytesIO(data)) as pil:
            return _pil_to_bgr(pil, what)
    except ImageLoadError as exc:  # from _pil_to_bgr
        if "truncated" in str(exc.__cause__):  # Pillow's "image file is truncated"
            raise  # not OpenCV's: OpenCV 4 decodes the part there is and makes the rest grey
    except PILImage.DecompressionBombError as exc:
        raise ImageLoadError(
            f"{what}: too large to decode safely ({exc.args[0].split(',')[0]}); downscale it "
            "first"
        ) from exc
    except (PILImage.UnidentifiedImageError, OSError, SyntaxError, ValueError):
        pass  # a format, or a variant of one, that Pillow does not read (OpenCV may)
    return None


def _pil_to_bgr(pil: PILImage.Image, what: str = "PIL image") -> np.ndarray:
    """A PIL image as BGR ``uint8`` ``(H, W, 3)``, turned upright by its EXIF orientation
    tag; what cannot be read is one :class:`ImageLoadError` saying what to do, naming the
    image as ``what``."""
    if pil.width == 0 or pil.height == 0:
        raise ImageLoadError(f"empty PIL image of size {pil.width}x{pil.height} (zero pixels)")
    try:
        pil.load()
    except OSError as exc:  # "image file is truncated", "broken data stream", ...
        raise ImageLoadError(
            f"{what}: its pixels cannot be decoded ({exc}); the file is truncated or "
            "corrupt: use a complete copy of it"
        ) from exc
    except (ValueError, AssertionError) as exc:  # Pillow's errors for a closed file
        raise ImageLoadError(
            f"PIL image: its pixels cannot be read ({str(exc) or 'its file is closed'}); an "
            "image from Image.open() must be loaded while its file is open: call "
            "image.load() inside the `with` block, or pass the file's path instead"
        ) from exc
    pil = _upright(pil)
    if pil.mode.startswith("I;16") or pil.mode in ("I", "F"):  # deep gray, as arrays are
        values = np.asarray(pil)
        sixteen_bit = pil.mode.startswith("I;16") or (
            pil.mode == "I" and int(values.max()) > 255)
        if sixteen_bit:  # native uint16, so that it keeps its top 8 bits; "I" of 0..255: 8-bit
            values = np.clip(values, 0, 65535).astype(np.uint16)
        return cv2.cvtColor(_to_uint8(values), cv2.COLOR_GRAY2BGR)
    if pil.mode == "L":
        return cv2.cvtColor(np.asarray(pil), cv2.COLOR_GRAY2BGR)
    try:
        rgb = np.asarray(pil.convert("RGB"))
    except ValueError as exc:  # e.g. "conversion from La to L not supported"
        raise ImageLoadError(
            f"PIL image mode {pil.mode!r} cannot be converted to RGB ({exc}); convert it to "
            "a mode that can first (RGB, RGBA, L or LA: image.convert('LA') for 'La')"
        ) from exc
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _upright(pil: PILImage.Image) -> PILImage.Image:
    """``pil`` turned as its EXIF orientation tag says it is displayed; ``pil`` itself when
    it has no such tag (no copy is made). Images made from others (``convert``, ``resize``,
    ``crop``...) keep their source's tag and pixels, so they are turned too; an image the
    caller turned upright by hand (``transpose``) still carries the tag: turn it with
    ``PIL.ImageOps.exif_transpose``, which drops the tag, or remove the tag."""
    if pil.getexif().get(_EXIF_ORIENTATION, 1) == 1:
        return pil
    from PIL import ImageOps

    return ImageOps.exif_transpose(pil)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        # [0, 1] or [0, 255] by the largest finite value (one inf pixel must not decide)
        if float(np.max(array, where=np.isfinite(array), initial=-np.inf)) <= 1.0:
            array = array * 255.0
        return np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.uint16):  # either byte order
        return (array >> 8).astype(np.uint8)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        return np.clip(array, 0, 255).astype(np.uint8)
    raise ImageLoadError(
        f"unsupported image array dtype {array.dtype}; use uint8, uint16 or float in [0, 1]"
    )
