"""Image loading: every supported input type gives the same BGR array."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import without_root_file_access
from emotionkit import ImageLoadError, load_image


def test_path_str_and_pathlib_load_bgr(tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), astronaut_bgr)
    for src in (path, str(path)):
        img = load_image(src)
        assert img.dtype == np.uint8 and img.shape == (512, 512, 3)
        np.testing.assert_array_equal(img, astronaut_bgr)


def test_bytes_decode_to_same_pixels(astronaut_bgr: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", astronaut_bgr)
    assert ok
    np.testing.assert_array_equal(load_image(buf.tobytes()), astronaut_bgr)


def test_pil_rgb_is_converted_to_bgr(astronaut_bgr: np.ndarray) -> None:
    pil = Image.fromarray(astronaut_bgr[:, :, ::-1])
    np.testing.assert_array_equal(load_image(pil), astronaut_bgr)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_pil_other_modes_give_three_channels(astronaut_bgr: np.ndarray, mode: str) -> None:
    pil = Image.fromarray(astronaut_bgr[:, :, ::-1]).convert(mode)
    img = load_image(pil)
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    if mode == "L":
        gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY).astype(int)
        assert np.array_equal(img[:, :, 0], img[:, :, 2])
        assert np.abs(img[:, :, 1].astype(int) - gray).max() <= 1
    elif mode == "RGBA":
        np.testing.assert_array_equal(img, astronaut_bgr)
    elif mode == "CMYK":
        assert np.abs(img.astype(int) - astronaut_bgr).max() <= 2
    else:  # P: 216-colour web palette, dithered; compare 7x7 local means
        local = (cv2.blur(img, (7, 7)).astype(int), cv2.blur(astronaut_bgr, (7, 7)).astype(int))
        assert np.abs(local[0] - local[1]).mean() <= 3
        assert np.abs(local[0] - local[1]).max() <= 20


def test_empty_pil_images_are_refused(astronaut_bgr: np.ndarray) -> None:
    for mode in ("RGB", "L", "I", "RGBA"):
        with pytest.raises(ImageLoadError, match=r"empty PIL image of size 0x0"):
            load_image(Image.new(mode, (0, 0)))
    with pytest.raises(ImageLoadError, match=r"empty PIL image of size 7x0"):
        load_image(Image.new("RGB", (7, 0)))


def test_grayscale_and_bgra_arrays(astronaut_bgr: np.ndarray) -> None:
    gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    img = load_image(gray)
    assert img.shape == (512, 512, 3)
    assert np.array_equal(img[:, :, 1], gray)
    bgra = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2BGRA)
    bgra[:, :, 3] = 0
    np.testing.assert_array_equal(load_image(bgra), astronaut_bgr)


def test_16_bit_gray_png_keeps_its_tones(tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), gray.astype(np.uint16) * 257)  # 16-bit PNG of the same photo
    for source in (path, Image.open(path)):
        img = load_image(source)
        assert img.shape == (512, 512, 3)
        np.testing.assert_array_equal(img[:, :, 0], gray)
    pil_f = Image.fromarray(gray.astype(np.float32) / 255.0, mode="F")
    assert np.abs(load_image(pil_f)[:, :, 0].astype(int) - gray).max() <= 1


def test_decompression_bomb_is_one_clear_error(tmp_path: Path, astronaut_bgr) -> None:
    """A PNG that declares 20000x20000 pixels (400 megapixels) is refused before decoding."""
    import struct
    import zlib

    _, buf = cv2.imencode(".png", astronaut_bgr[:8, :8])
    data = bytearray(buf.tobytes())
    ihdr = data[12:29]  # b"IHDR" + width, height, depth, colour, compression, filter, interlace
    ihdr[4:12] = struct.pack(">II", 20000, 20000)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path = tmp_path / "bomb.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageLoadError, match=r"bomb.png: too large to decode safely .*downscale"):
        load_image(path)


def test_float_array_in_unit_range(astronaut_bgr: np.ndarray) -> None:
    img = load_image(astronaut_bgr.astype(np.float32) / 255.0)
    assert np.abs(img.astype(int) - astronaut_bgr.astype(int)).max() <= 1


def test_exif_orientation_is_honoured(tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    # A 512x256 landscape JPEG tagged "rotate 90 CW to display" must load as 256x512.
    wide = Image.fromarray(astronaut_bgr[:256, :, ::-1])
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    wide.save(path, exif=exif.tobytes())
    img = load_image(path)
    assert img.shape[:2] == (512, 256)
    # The top row of the stored image becomes the right-hand column.
    stored = np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1]
    np.testing.assert_allclose(img[:, -1].astype(int), stored[0].astype(int), atol=0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "no such file"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty"),
        (lambda p: (p.write_text("hello, not an image"), p)[1], "not a readable image"),
        (lambda p: (p.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 40), p)[1], "not a readable image"),
    ],
    ids=["missing", "empty", "text", "truncated-jpeg"],
)
def test_bad_files_raise_one_line_error_naming_the_file(tmp_path: Path, make, message) -> None:
    path = make(tmp_path / "bad.jpg")
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_directory_and_unsupported_types_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)
    with pytest.raises(ImageLoadError, match="empty file name"):  # not "'.' is a directory"
        load_image("")
    with pytest.raises(ImageLoadError, match="unsupported"):
        load_image(12345)  # type: ignore[arg-type]
    with pytest.raises(ImageLoadError, match="shape"):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageLoadError, match="empty"):
        load_image(np.zeros((0, 4, 3), np.uint8))


def test_gif_bytes_decode_to_the_palette_colours(astronaut_bgr: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(astronaut_bgr[:, :, ::-1]).save(buf, format="GIF")
    data = buf.getvalue()
    img = load_image(data)
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    # exactly the GIF's own (palette) colours, in BGR order ...
    stored_rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(img, stored_rgb[:, :, ::-1])
    # ... which are close to the photo's (an RGB/BGR swap is off by ~32 on average)
    assert np.abs(img.astype(int) - astronaut_bgr).mean() < 6


def test_overlong_path_is_one_clear_error(tmp_path: Path) -> None:
    path = str(tmp_path / ("x" * 5000 + ".jpg"))
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    text = str(err.value)
    assert "File name too long" in text and "check the path" in text
    assert text.startswith(path[:40]) and "x.jpg (" in text and len(text) < 400
    assert "\n" not in text


def test_to_gray_and_to_bgr_convert_like_load_image(astronaut_bgr: np.ndarray) -> None:
    from emotionkit.io import to_bgr, to_gray

    gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    assert to_gray(gray) is gray
    for array in (astronaut_bgr.astype(np.float64) / 255.0, astronaut_bgr.astype(np.uint16) * 257,
                  cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2BGRA)):
        out = to_gray(array)
        assert out.dtype == np.uint8 and out.shape == (512, 512)
        assert np.abs(out.astype(int) - gray).max() <= 1
    unit_gray = to_gray(gray.astype(np.float32) / 255.0)
    assert unit_gray.dtype == np.uint8 and np.abs(unit_gray.astype(int) - gray).max() <= 1
    for convert in (to_gray, to_bgr):
        with pytest.raises(ImageLoadError, match="expected a numpy image array, got list"):
            convert([[1]])  # type: ignore[arg-type]
        with pytest.raises(ImageLoadError, match="empty image array"):
            convert(np.zeros((0, 5), np.uint8))
        with pytest.raises(ImageLoadError, match="dtype complex128"):
            convert(np.zeros((5, 5), np.complex128))


def test_draw_faces_converts_images_to_bgr_and_refuses_non_images(
    astronaut_bgr: np.ndarray,
) -> None:
    from emotionkit import Face
    from emotionkit.annotate import draw_faces

    face = Face(box=(177, 75, 96, 100), score=None, emotions={"happy": 0.9, "sad": 0.1})
    drawn = draw_faces(astronaut_bgr, [face])
    assert drawn.dtype == np.uint8 and (drawn != astronaut_bgr).any()
    assert tuple(drawn[125, 177]) == (0, 200, 0)  # the box's left edge, in green
    assert tuple(astronaut_bgr[125, 177]) != (0, 200, 0)  # the input is not drawn on
    # gray, BGRA and float images give a BGR copy whose box is green too (on a gray or
    # BGRA array OpenCV would draw it black or transparent)
    for image in (cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY),
                  cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2BGRA),
                  astronaut_bgr.astype(np.float64) / 255.0):
        other = draw_faces(image, [face])
        assert other.shape == astronaut_bgr.shape and other.dtype == np.uint8
        assert tuple(other[125, 177]) == (0, 200, 0)
    for bad in (np.zeros((0, 0, 3), np.uint8), astronaut_bgr.tolist()):
        with pytest.raises(ImageLoadError, match=r"draw_faces\(\): (empty|expected a numpy)"):
            draw_faces(bad, [face])  # type: ignore[arg-type]


def test_pil_images_honour_exif_orientation(tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    """A phone photo opened with PIL loads upright, exactly as its path and bytes do."""
    wide = Image.fromarray(astronaut_bgr[:256, :, ::-1])
    for orientation, name in ((6, "rot6.jpg"), (8, "rot8.png")):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / name
        wide.save(path, exif=exif.tobytes())
        expected = load_image(path)
        assert expected.shape[:2] == (512, 256)
        with Image.open(path) as pil:
            np.testing.assert_array_equal(load_image(pil), expected)
            # derived images keep the tag and the stored pixels: turned as well
            for derived in (pil.convert("RGB"), pil.copy(), pil.resize(pil.size)):
                assert derived.getexif().get(0x0112) == orientation
                np.testing.assert_array_equal(load_image(derived), expected)
            # turned upright with exif_transpose (which drops the tag): not turned again
            from PIL import ImageOps

            np.testing.assert_array_equal(load_image(ImageOps.exif_transpose(pil)), expected)
        np.testing.assert_array_equal(load_image(path.read_bytes()), expected)
    upright = Image.fromarray(astronaut_bgr[:, :, ::-1])  # no EXIF: taken as it is
    np.testing.assert_array_equal(load_image(upright), astronaut_bgr)


def test_loading_in_threads_leaves_the_warnings_machinery_alone(
    tmp_path: Path, astronaut_bgr: np.ndarray,
) -> None:
    """Decoding in a worker thread neither undoes the filters another thread installs, nor
    swallows the warnings it records, nor leaves a filter behind (``catch_warnings`` in a
    library is not thread-safe)."""
    import threading
    import time
    import warnings

    path = tmp_path / "a.jpg"
    cv2.imwrite(str(path), astronaut_bgr)
    data = path.read_bytes()
    stop = threading.Event()

    def decode() -> None:
        while not stop.is_set():
            load_image(data)
            load_image(path)

    before = list(warnings.filters)
    worker = threading.Thread(target=decode)
    worker.start()
    lost = undone = 0
    try:
        for i in range(60):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                time.sleep(0.002)
                warnings.warn(f"user warning {i}", UserWarning, stacklevel=1)
            lost += not caught
            mine = f"emotionkit-test-{i}"
            warnings.filterwarnings("ignore", message=mine)
            time.sleep(0.002)
            installed = [f for f in warnings.filters if f[1] is not None and f[1].pattern == mine]
            undone += not installed
            for f in installed:
                warnings.filters.remove(f)
    finally:
        stop.set()
        worker.join()
    assert (lost, undone) == (0, 0)
    assert warnings.filters == before


def test_large_photos_load_and_bombs_are_refused(
    tmp_path: Path, astronaut_bgr: np.ndarray, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between Pillow's MAX_IMAGE_PIXELS and twice that (90-180 megapixels by default) an
    image loads, with Pillow's own warning (left to the caller's filters); above, it is one
    ImageLoadError. The limit is scaled down here so that the real 512x512 photo (262,144
    pixels) crosses it."""
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), astronaut_bgr)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200_000)  # warns above, refuses > 400,000
    with pytest.warns(Image.DecompressionBombWarning):
        np.testing.assert_array_equal(load_image(path), astronaut_bgr)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    with pytest.raises(ImageLoadError, match=r"a.png: too large to decode safely .*downscale"):
        load_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's "no limit"
    np.testing.assert_array_equal(load_image(path), astronaut_bgr)


def test_cli_hides_pillows_warning_for_large_photos(tmp_path: Path,
                                                    astronaut_bgr: np.ndarray) -> None:
    """The CLI (its own process) filters Pillow's DecompressionBombWarning: a 90-180 MP
    photo is not a problem worth a warning line there."""
    import subprocess
    import sys

    path = tmp_path / "a.png"
    cv2.imwrite(str(path), astronaut_bgr)
    code = ("import PIL.Image, sys; PIL.Image.MAX_IMAGE_PIXELS = 200_000; "
            "from emotionkit.cli import run; sys.argv = ['emotionkit', 'detect', "
            f"{str(path)!r}, '-d', 'none', '--format', 'csv']; run()")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "DecompressionBomb" not in res.stderr and "a.png" in res.stdout


def test_unreadable_pil_images_are_one_clear_error(
    tmp_path: Path, astronaut_bgr: np.ndarray,
) -> None:
    """A PIL image whose file is truncated, whose file was closed before its pixels were
    read, or whose mode has no RGB conversion: one ImageLoadError saying what to do."""
    path = tmp_path / "a.jpg"
    cv2.imwrite(str(path), astronaut_bgr)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageLoadError, match=r"truncated.*complete copy"):
        load_image(Image.open(cut))

    with Image.open(path) as pil:  # the `with` block closes the file ...
        pass
    closed = Image.open(path)
    closed.close()
    with path.open("rb") as f:
        from_closed_file = Image.open(f)
    for image in (pil, closed, from_closed_file):  # ... before the pixels were read
        with pytest.raises(ImageLoadError, match=r"cannot be read .*image\.load\(\) inside"):
            load_image(image)

    premultiplied = Image.fromarray(astronaut_bgr[:, :, ::-1]).convert("LA").convert("La")
    with pytest.raises(ImageLoadError, match=r"mode 'La' cannot be converted to RGB"):
        load_image(premultiplied)


def test_heic_is_named_and_avif_is_not_taken_for_heic() -> None:
    """The first bytes of an iPhone HEIC (brand heic) get the HEIF-decoder advice; a
    broken AVIF file, whose ftyp box may start with the generic brand mif1 too, does not."""
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    with pytest.raises(ImageLoadError, match="a HEIC/HEIF photo, which needs a HEIF decoder"):
        load_image(heic)
    avif = b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf" + bytes(64)
    with pytest.raises(ImageLoadError, match="not a readable image") as err:
        load_image(avif)
    assert "HEIC" not in str(err.value)


def test_big_endian_16_bit_arrays_keep_their_top_8_bits(astronaut_bgr: np.ndarray) -> None:
    """A 16-bit array in big-endian byte order (``numpy.frombuffer(data, ">u2")``, as raw
    16-bit PNG, PGM and FITS data are stored) was clipped to 0..255 like other integers:
    an almost white image."""
    from emotionkit.io import to_bgr, to_gray

    gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    deep_gray = (gray.astype(np.uint16) * 257).astype(">u2")
    deep_bgr = (astronaut_bgr.astype(np.uint16) * 257).astype(">u2")
    np.testing.assert_array_equal(load_image(deep_gray)[:, :, 1], gray)
    np.testing.assert_array_equal(to_gray(deep_gray), gray)
    np.testing.assert_array_equal(to_bgr(deep_bgr), astronaut_bgr)


def test_non_finite_pixels_do_not_darken_a_unit_float_image(astronaut_bgr: np.ndarray) -> None:
    """One ``inf`` pixel in a float image in ``[0, 1]`` made the whole image read as
    ``[0, 255]``: black. NaN is 0, +inf the brightest value; the other pixels keep theirs."""
    import warnings

    unit = astronaut_bgr.astype(np.float32) / 255.0
    unit[0, 0], unit[0, 1] = np.inf, np.nan
    img = load_image(unit)
    assert np.abs(img[1:].astype(int) - astronaut_bgr[1:]).max() <= 1
    assert tuple(img[0, 0]) == (255, 255, 255) and tuple(img[0, 1]) == (0, 0, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "All-NaN slice encountered"
        assert not load_image(np.full((4, 4), np.nan, np.float32)).any()


@pytest.mark.parametrize("ext", [".jpg", ".png", ".gif", ".tif"])
def test_a_truncated_photo_is_reported_as_truncated(tmp_path: Path, astronaut_bgr: np.ndarray,
                                                    ext: str) -> None:
    """A photo cut short (an interrupted download or copy) is an error that says so. It
    was handed on to OpenCV, which OpenCV 4 decodes without a word for a JPEG (the missing
    part grey: a wrong result) and refuses as 'unknown format ... use a JPEG' otherwise."""
    full = tmp_path / f"full{ext}"
    Image.fromarray(astronaut_bgr[:, :, ::-1]).save(full)
    data = full.read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: len(data) // 2])
    for source, name in ((cut, str(cut)), (cut.read_bytes(), "image bytes")):
        with pytest.raises(ImageLoadError) as err:
            load_image(source)
        text = str(err.value)
        assert text.startswith(f"{name}: ") and "\n" not in text
        assert "truncated" in text and "complete copy" in text and "use a JPEG" not in text


def test_an_unreadable_file_says_what_to_do(tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    """A file without read permission: one line naming it, the reason and what to check."""
    import subprocess
    import sys

    path = tmp_path / "secret.jpg"
    cv2.imwrite(str(path), astronaut_bgr)
    path.chmod(0)
    code = ("import sys; from emotionkit import load_image, ImageLoadError\n"
            "try: load_image(sys.argv[1])\nexcept ImageLoadError as e: print(e)")
    res = subprocess.run([*without_root_file_access(), sys.executable, "-c", code, str(path)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == (f"{path}: cannot read file (Permission denied); check the "
                                  "file's permissions")
