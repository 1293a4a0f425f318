"""prepare_image: any image Pillow reads becomes an upright, metadata-free PNG (or JPEG when the PNG
would pass ~4 MB), at most 2048 px long; non-images, broken files and bombs are refused politely."""

from __future__ import annotations

import base64
import io
import random
import struct
import time
import tracemalloc
import warnings
import zlib

import pytest
from PIL import Image, ImageCms

from lumabot.jobs.images import (JPEG_THRESHOLD, MAX_SIDE, ImageRejected, PreparedImage,
                                 prepare_image)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _encode(im: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def _decode(prepared: PreparedImage) -> Image.Image:
    im = Image.open(io.BytesIO(prepared.data))
    im.load()
    assert (im.width, im.height) == (prepared.width, prepared.height)
    assert im.format == {"image/png": "PNG", "image/jpeg": "JPEG"}[prepared.media_type]
    assert "exif" not in im.info and not im.getexif()
    assert "icc_profile" not in im.info
    return im


def _close(a, b, tolerance=6) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def _noise(mode: str, size: tuple[int, int], seed: int = 0) -> Image.Image:
    bands = len(mode)
    return Image.frombytes(mode, size, random.Random(seed).randbytes(size[0] * size[1] * bands))


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _bilevel_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG, built without Pillow ever holding its pixels."""
    row = b"\x00" * (1 + (width + 7) // 8)
    z = zlib.compressobj(9)
    block = row * 256
    idat = []
    for start in range(0, height, 256):
        idat.append(z.compress(block if height - start >= 256 else row * (height - start)))
    idat.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(idat))
            + _png_chunk(b"IEND", b""))


# --- formats ------------------------------------------------------------------------------------

def test_png_passes_through_with_its_shape_and_pixels():
    src = _noise("RGB", (64, 48))
    out = prepare_image(_encode(src, "PNG"))
    assert (out.media_type, out.width, out.height) == ("image/png", 64, 48)
    im = _decode(out)
    assert im.mode == "RGB" and im.tobytes() == src.tobytes()
    assert base64.b64decode(out.base64()) == out.data


def test_webp_becomes_png():
    src = Image.new("RGB", (40, 30), GREEN)
    out = prepare_image(_encode(src, "WEBP", lossless=True))
    assert (out.media_type, out.width, out.height) == ("image/png", 40, 30)
    assert _decode(out).convert("RGB").getpixel((5, 5)) == GREEN


def test_animated_gif_keeps_its_first_frame_only():
    frames = [Image.new("RGB", (20, 20), RED), Image.new("RGB", (20, 20), BLUE)]
    raw = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(io.BytesIO(raw)) as check:
        assert check.n_frames == 2
    out = prepare_image(raw)
    assert (out.media_type, out.width, out.height) == ("image/png", 20, 20)
    pixel = _decode(out).convert("RGB").getpixel((10, 10))
    assert pixel == RED and pixel != BLUE


def test_gif_transparency_becomes_alpha():
    src = Image.new("P", (10, 10), 1)
    src.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    src.paste(0, (0, 0, 5, 10))
    out = prepare_image(_encode(src, "GIF", transparency=0))
    im = _decode(out)
    assert im.mode == "RGBA"
    assert im.getpixel((1, 1))[3] == 0 and im.getpixel((8, 8)) == (255, 0, 0, 255)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_other_formats_are_converted(fmt):
    src = Image.new("RGB", (32, 32), BLUE)
    out = prepare_image(_encode(src, fmt))
    assert (out.media_type, out.width, out.height) == ("image/png", 32, 32)
    assert _close(_decode(out).convert("RGB").getpixel((16, 16)), BLUE)


def test_jpeg_stays_small_and_loses_nothing_visible():
    out = prepare_image(_encode(Image.new("RGB", (50, 40), RED), "JPEG", quality=95))
    assert (out.media_type, out.width, out.height) == ("image/png", 50, 40)
    assert _close(_decode(out).getpixel((25, 20)), RED)


# --- orientation and metadata ------------------------------------------------------------------

def test_exif_orientation_6_is_applied_and_exif_stripped():
    # Stored 40x20 with a red block top-left; Orientation=6 means "rotate 90 deg clockwise to view".
    src = Image.new("RGB", (40, 20), BLUE)
    src.paste(RED, (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "PhoneMaker"  # Make: must not leak either
    raw = _encode(src, "JPEG", quality=95, exif=exif.tobytes())
    with Image.open(io.BytesIO(raw)) as check:
        assert check.getexif()[0x0112] == 6
    out = prepare_image(raw)
    assert (out.width, out.height) == (20, 40)
    im = _decode(out)
    # (x, y) stored -> (H - 1 - y, x) viewed: the red block is now in the top-right corner.
    assert _close(im.getpixel((15, 4)), RED, 20)
    assert _close(im.getpixel((4, 4)), BLUE, 20)
    assert _close(im.getpixel((15, 35)), BLUE, 20)
    assert b"PhoneMaker" not in out.data


def test_orientation_is_applied_after_downscaling():
    src = Image.new("RGB", (4000, 1000), BLUE)
    src.paste(RED, (0, 0, 1000, 1000))
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 deg counter-clockwise to view
    out = prepare_image(_encode(src, "JPEG", exif=exif.tobytes()))
    assert (out.width, out.height) == (512, 2048)
    im = _decode(out)
    assert _close(im.getpixel((256, 1800)), RED, 20)  # left end moved to the bottom
    assert _close(im.getpixel((256, 200)), BLUE, 20)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_orientation_is_applied_once_in_other_formats(fmt):
    src = Image.new("RGB", (40, 20), BLUE)
    src.paste(RED, (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    params = {"lossless": True} if fmt == "WEBP" else {}
    im = _decode(prepare_image(_encode(src, fmt, exif=exif.tobytes(), **params)))
    assert im.size == (20, 40)
    assert _close(im.getpixel((15, 4)), RED, 20) and _close(im.getpixel((4, 4)), BLUE, 20)


def test_icc_profile_is_applied_then_dropped():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = prepare_image(_encode(Image.new("RGB", (8, 8), (10, 120, 230)), "PNG", icc_profile=srgb))
    assert _close(_decode(out).getpixel((3, 3)), (10, 120, 230), 2)


# --- modes -------------------------------------------------------------------------------------

def test_16_bit_greyscale_keeps_its_tones():
    src = Image.new("I;16", (30, 10), 32768)
    src.paste(0, (0, 0, 10, 10))
    src.paste(65535, (20, 0, 30, 10))
    raw = _encode(src, "PNG")
    with Image.open(io.BytesIO(raw)) as check:
        assert check.mode.startswith("I")
    im = _decode(prepare_image(raw))
    assert im.mode == "L"
    assert abs(im.getpixel((15, 5)) - 128) <= 1
    assert im.getpixel((5, 5)) == 0 and im.getpixel((25, 5)) == 255


def test_float_tiff_becomes_greyscale():
    src = Image.new("F", (10, 10), 0.5)
    im = _decode(prepare_image(_encode(src, "TIFF")))
    assert im.mode == "L" and abs(im.getpixel((5, 5)) - 128) <= 1


def test_bilevel_becomes_greyscale():
    src = Image.new("1", (16, 16), 1)
    src.paste(0, (0, 0, 8, 16))
    im = _decode(prepare_image(_encode(src, "PNG")))
    assert im.mode == "L" and im.getpixel((2, 2)) == 0 and im.getpixel((12, 2)) == 255


def test_cmyk_jpeg_becomes_rgb():
    src = Image.new("CMYK", (30, 30), (0, 255, 255, 0))  # red in CMYK
    raw = _encode(src, "JPEG", quality=95)
    with Image.open(io.BytesIO(raw)) as check:
        assert check.mode == "CMYK"
    im = _decode(prepare_image(raw))
    assert im.mode == "RGB" and _close(im.getpixel((15, 15)), RED, 10)


def test_rgba_transparency_is_preserved_in_png():
    src = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    src.paste((255, 0, 0, 128), (10, 0, 20, 20))
    out = prepare_image(_encode(src, "PNG"))
    assert out.media_type == "image/png"
    im = _decode(out)
    assert im.mode == "RGBA"
    assert im.getpixel((2, 2))[3] == 0 and im.getpixel((15, 5)) == (255, 0, 0, 128)


def test_transparency_is_flattened_onto_white_when_jpeg_is_needed():
    src = _noise("RGBA", (200, 200))
    src.paste((0, 0, 0, 0), (0, 0, 100, 200))
    out = prepare_image(_encode(src, "PNG"), jpeg_threshold=60_000)
    assert out.media_type == "image/jpeg" and len(out.data) <= 60_000
    im = _decode(out)
    assert im.mode == "RGB" and _close(im.getpixel((50, 100)), WHITE, 10)


# --- size --------------------------------------------------------------------------------------

def test_large_noisy_image_is_downscaled_and_sent_as_jpeg_under_the_threshold():
    src = _noise("RGB", (3000, 2000))
    out = prepare_image(_encode(src, "PNG", compress_level=0))
    assert (out.width, out.height) == (MAX_SIDE, 1365)
    assert out.media_type == "image/jpeg" and out.data[:2] == b"\xff\xd8"
    assert len(out.data) <= JPEG_THRESHOLD
    _decode(out)


def test_large_jpeg_is_downscaled_keeping_aspect_ratio():
    src = Image.new("RGB", (4000, 3000), GREEN)
    out = prepare_image(_encode(src, "JPEG"))
    assert (out.media_type, out.width, out.height) == ("image/png", 2048, 1536)
    assert _close(_decode(out).getpixel((1000, 700)), GREEN, 10)


def test_small_image_is_never_upscaled():
    out = prepare_image(_encode(Image.new("RGB", (30, 20), RED), "PNG"), max_side=512)
    assert (out.width, out.height) == (30, 20)


def test_custom_max_side():
    out = prepare_image(_encode(Image.new("RGBA", (300, 100), (1, 2, 3, 4)), "PNG"), max_side=90)
    assert (out.width, out.height) == (90, 30)
    assert _decode(out).mode == "RGBA"


# --- refusals ----------------------------------------------------------------------------------

def _assert_friendly(exc: ImageRejected) -> None:
    text = str(exc)
    assert text.endswith(".") and text[0].isupper()
    for internal in ("PIL", "Pillow", "Error", "Traceback", "cannot identify", "errno", "0x"):
        assert internal not in text


@pytest.mark.parametrize("raw", [
    b"hello",
    b"",
    b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
    b"<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in</body></html>",
])
def test_non_images_are_rejected(raw):
    with pytest.raises(ImageRejected) as info:
        prepare_image(raw)
    assert info.value.code == "not_an_image"
    assert "not an image" in str(info.value)
    _assert_friendly(info.value)


@pytest.mark.parametrize("keep", [0.5, 0.1, 40])
def test_truncated_png_is_rejected(keep):
    raw = _encode(_noise("RGB", (64, 64)), "PNG")
    cut = raw[: int(len(raw) * keep)] if keep < 1 else raw[:keep]
    with pytest.raises(ImageRejected) as info:
        prepare_image(cut)
    assert info.value.code in ("image_unreadable", "not_an_image")
    _assert_friendly(info.value)


def test_truncated_png_with_intact_header_is_unreadable():
    raw = _encode(_noise("RGB", (64, 64)), "PNG")
    with pytest.raises(ImageRejected) as info:
        prepare_image(raw[: len(raw) // 2])
    assert info.value.code == "image_unreadable"


@pytest.mark.parametrize("side", [
    20_000,  # 400 Mpx: beyond Pillow's own error limit
    10_000,  # 100 Mpx: Pillow only warns; the warning must become a refusal
    8_000,   # 64 Mpx: under Pillow's limits, over ours
])
def test_decompression_bomb_is_refused_fast(side):
    raw = _bilevel_png(side, side)
    assert len(raw) < 100_000
    limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    started = time.perf_counter()
    try:
        prepare_image(raw)
    except MemoryError:  # pragma: no cover - the point of the test
        pytest.fail("a bomb allocated its pixels")
    except ImageRejected as exc:
        assert exc.code == "image_bomb"
        assert "too many pixels" in str(exc)
        _assert_friendly(exc)
    else:
        pytest.fail("a bomb was accepted")
    assert time.perf_counter() - started < 1.0
    assert Image.MAX_IMAGE_PIXELS == limit and warnings.filters == filters


def test_max_pixels_is_configurable():
    raw = _encode(Image.new("RGB", (100, 100), RED), "PNG")
    with pytest.raises(ImageRejected) as info:
        prepare_image(raw, max_pixels=9_999)
    assert info.value.code == "image_bomb"
    assert prepare_image(raw, max_pixels=10_000).width == 100


def test_rejection_is_a_value_error():
    with pytest.raises(ValueError):
        prepare_image(b"hello")


# --- memory: formats that inflate on open, large images reduced a band at a time ------------------

def test_ico_is_refused_before_anything_is_decoded():
    raw = _encode(Image.new("RGB", (256, 256), BLUE), "ICO")
    tracemalloc.start()
    try:
        with pytest.raises(ImageRejected) as info:
            prepare_image(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.code == "not_an_image"
    assert peak < 1_000_000


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P"])
def test_large_images_are_reduced_band_by_band_keeping_every_region(mode):
    src = Image.new("RGB", (6200, 4100), BLUE)
    src.paste(RED, (0, 0, 3100, 2050))           # top-left quarter red
    src.paste((0, 160, 0), (3100, 2050, 6200, 4100))  # bottom-right quarter green
    src = src.convert(mode) if mode != "P" else src.quantize(4)
    out = prepare_image(_encode(src, "PNG"))
    assert (out.width, out.height) == (2048, 1354)
    im = _decode(out).convert("RGB")
    assert _close(im.getpixel((200, 200)), RED, 20)
    assert _close(im.getpixel((1800, 1200)), (0, 160, 0), 20)
    assert _close(im.getpixel((1800, 200)), BLUE, 20)
    assert _close(im.getpixel((1000, 650)), RED, 20)  # near the band and quarter seams
