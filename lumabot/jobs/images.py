"""Decode and normalise a user's image before it is sent to Luma. Pure: bytes in, bytes out.

`prepare_image` accepts the formats people share (PNG, JPEG, WebP, GIF, BMP, TIFF), refuses other
formats (some decoders, ICO's for one, inflate the whole image while merely opening it, before any
pixel check), non-images, broken files and decompression bombs with a user-facing `ImageRejected`,
and returns a
`PreparedImage`: upright (EXIF orientation applied), at most `max_side` on the long side, without
metadata, encoded as PNG, or as JPEG when the PNG would be larger than `jpeg_threshold`.
"""

from __future__ import annotations

import base64 as _b64
import io
import warnings
from typing import TYPE_CHECKING, Any
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageFile, UnidentifiedImageError

if TYPE_CHECKING:
    from PIL import ImageCms

MAX_SIDE = 2048
JPEG_THRESHOLD = 4 * 1024 * 1024  # ~4 MB
JPEG_QUALITY = 90
MAX_PIXELS = 50_000_000  # decoded pixels above which we refuse (decompression bombs)

# Qualities tried, after `jpeg_quality`, when the JPEG is still above the threshold.
_FALLBACK_QUALITIES = (80, 70, 60, 50)

# Decoders that read only the header on open, so the pixel check runs before any pixel exists.
# Not ICO/ICNS/CUR (they decode the embedded image on open: +341 MB for one ICO bomb), nor EPS
# (Ghostscript as a subprocess), nor the long tail of formats nobody shares in Slack.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")  # JPEG covers MPO
# Modes that Image.reduce handles as they are.
_REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "RGBX", "CMYK"})
_BAND_ROWS = 128  # output rows reduced per band

# Same mapping as ImageOps.exif_transpose; we apply it after downscaling, which is cheaper.
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION_TAG = 0x0112

_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_HIGH_BIT_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})

_NOT_AN_IMAGE = "That file is not an image lumabot can read (try PNG, JPEG, WebP or GIF)."
_UNREADABLE = ("That image looks damaged or incomplete, so lumabot could not read it. "
               "Try exporting or uploading it again.")


class ImageRejected(ValueError):
    """The bytes cannot be used; `code` is one of "not_an_image", "image_bomb", "image_unreadable"
    and str(exc) is a plain-English sentence for the user (no internals)."""

    code: str

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class PreparedImage:
    data: bytes  # encoded bytes to send
    media_type: str  # "image/png" or "image/jpeg"
    width: int
    height: int

    def base64(self) -> str:
        return _b64.b64encode(self.data).decode("ascii")


def prepare_image(raw: bytes, *, max_side: int = MAX_SIDE, jpeg_threshold: int = JPEG_THRESHOLD,
                  jpeg_quality: int = JPEG_QUALITY, max_pixels: int = MAX_PIXELS) -> PreparedImage:
    """Decode `raw`, make it upright, RGB/RGBA/L, at most `max_side` px long, and re-encode it."""
    if max_side < 1 or max_pixels < 1:
        raise ValueError("max_side and max_pixels must be positive")
    limit = max_pixels
    if Image.MAX_IMAGE_PIXELS:  # Pillow's own limit (its warning is escalated to an error below)
        limit = min(limit, int(Image.MAX_IMAGE_PIXELS))
    bomb = ImageRejected(
        "image_bomb",
        f"That image has too many pixels for lumabot to handle; please send one under "
        f"{_megapixels(limit)} megapixels.")

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = _open(raw)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError):
            raise bomb from None
        except UnidentifiedImageError:
            raise ImageRejected("not_an_image", _NOT_AN_IMAGE) from None
        except Exception as exc:  # a plugin recognised the file but choked on its header
            raise ImageRejected("image_unreadable", _UNREADABLE) from exc

        with im:
            width, height = im.size
            if width < 1 or height < 1:
                raise ImageRejected("image_unreadable", _UNREADABLE)
            # Image.open only parsed the header: refuse before a single pixel is allocated.
            if width * height > max_pixels:
                raise bomb
            try:
                out = _normalise(im, max_side)
            except ImageRejected:
                raise
            except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError):
                raise bomb from None
            except Exception as exc:  # truncated or corrupt pixel data, bad palette, ...
                raise ImageRejected("image_unreadable", _UNREADABLE) from exc
            # Inside `with im`: `out` may be `im` itself, whose pixels go when it is closed.
            return _encode(out, jpeg_threshold=jpeg_threshold, jpeg_quality=jpeg_quality)


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.3g}"


def _open(raw: bytes) -> ImageFile.ImageFile:
    Image.init()  # load the plugins `formats` names
    return Image.open(io.BytesIO(raw), formats=ALLOWED_FORMATS)


def _normalise(im: Image.Image, max_side: int) -> Image.Image:
    """Decode the first frame of `im` and return it downscaled, upright and in L, RGB or RGBA."""
    width, height = im.size
    target = _fit(width, height, max_side)
    if target is not None and im.format == "JPEG":
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale (never below the target): far less memory.
        im.draft(im.mode, target)

    im.load()  # first frame only; raises on truncated/corrupt data
    # Read after load: PNG may keep eXIf after the pixels, and Pillow's TIFF plugin applies the
    # orientation itself while loading (and drops the tag), which must not be applied twice.
    orientation = _orientation(im)

    mode = im.mode
    has_alpha = mode in _ALPHA_MODES or (
        "transparency" in im.info and mode in ("1", "L", "P", "RGB"))
    if mode in _HIGH_BIT_MODES:
        final = "L"
    elif has_alpha:
        final = "RGBA"
    elif mode in ("1", "L"):
        final = "L"
    else:
        final = "RGB"

    # Modes that cannot be resampled (1, P, PA) or whose transparency is a key colour (which
    # resampling would blur) are converted first; every other mode is converted after the resize,
    # on the smaller image.
    convert_first = mode in ("1", "P", "PA") or (has_alpha and mode not in _ALPHA_MODES)
    factor = _reduce_factor(im.size, target)
    if factor > 1 and (convert_first or mode in _REDUCIBLE_MODES):
        # A large image is first box-reduced a band at a time: Pillow's resize and reduce copy
        # the whole image to premultiply alpha (+200 MB for 7000x7000), and so does convert.
        im = _reduce_in_bands(im, factor, final if convert_first else None)
    elif convert_first:
        im = im.convert(final)

    if target is not None and im.size != target:
        im = im.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)

    if im.mode in _HIGH_BIT_MODES:
        im = _high_bit_to_l(im)
    elif im.mode != final:
        im = _to_srgb(im, final) or im.convert(final)
    elif final in ("RGB", "RGBA"):
        im = _to_srgb(im, final) or im

    method = _ORIENTATION.get(orientation) if orientation is not None else None
    if method is not None:
        im = im.transpose(method)
    return im


def _reduce_factor(size: tuple[int, int], target: tuple[int, int] | None) -> int:
    """The integer factor that brings `size` down to between 1x and 2x `target` (1: none)."""
    if target is None:
        return 1
    return max(1, min(size[0] // target[0], size[1] // target[1]))


def _reduce_in_bands(im: Image.Image, factor: int, mode: str | None) -> Image.Image:
    """`im` box-reduced by `factor` (converted to `mode` first when given), one band of rows at
    a time, so no full-size copy is ever made."""
    width, height = im.size
    out: Image.Image | None = None
    step = factor * _BAND_ROWS
    for top in range(0, height, step):
        band = im.crop((0, top, width, min(height, top + step)))
        if mode is not None:
            band = band.convert(mode)
        small = band.reduce(factor)
        if out is None:
            out = Image.new(small.mode, (-(-width // factor), -(-height // factor)))
        out.paste(small, (0, top // factor))
    assert out is not None
    return out


def _fit(width: int, height: int, max_side: int) -> tuple[int, int] | None:
    """The downscaled size (aspect ratio kept, long side == max_side), or None: never upscale."""
    long_side = max(width, height)
    if long_side <= max_side:
        return None
    scale = max_side / long_side
    return (max(1, min(max_side, round(width * scale))),
            max(1, min(max_side, round(height * scale))))


def _orientation(im: Image.Image) -> int | None:
    try:
        value = im.getexif().get(_EXIF_ORIENTATION_TAG)
    except Exception:  # unreadable EXIF: treat as "no orientation", not as a broken image
        return None
    return value if isinstance(value, int) else None


def _high_bit_to_l(im: Image.Image) -> Image.Image:
    """16/32-bit integer or float greyscale to 8-bit L, scaling rather than clipping."""
    if im.mode.startswith("I;16"):
        lo, hi, full = 0.0, 65535.0, True
    else:
        lo, hi = im.getextrema()  # type: ignore[assignment]
        full = False
    if im.mode == "F":
        if 0 <= lo and hi <= 1.0:
            scale, offset = 255.0, 0.0
        elif 0 <= lo and hi <= 255:
            scale, offset = 1.0, 0.0
        else:
            scale, offset = _stretch(lo, hi)
        return im.point(lambda x: x * scale + offset).convert("L")
    if im.mode != "I":
        im = im.convert("I")
    if full or (0 <= lo and 255 < hi <= 65535):
        scale, offset = 1 / 256, 0.0  # 16-bit range: keep the high byte
    elif 0 <= lo and hi <= 255:
        return im.convert("L")
    else:
        scale, offset = _stretch(lo, hi)
    return im.point(lambda x: x * scale + offset).convert("L")


def _stretch(lo: float, hi: float) -> tuple[float, float]:
    if hi <= lo:  # a flat image: keep its value, clamped to 0..255
        return 0.0, float(min(max(lo, 0), 255))
    scale = 255.0 / (hi - lo)
    return scale, -lo * scale


@lru_cache(maxsize=1)
def _srgb_profile() -> "ImageCms.ImageCmsProfile":
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_srgb(im: Image.Image, final: str) -> Image.Image | None:
    """Convert an image carrying an ICC profile (Display P3 photos, CMYK prints) to sRGB `final`.

    Returns None when there is no profile or it cannot be used; the caller then converts plainly.
    """
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK") or final not in ("RGB", "RGBA"):
        return None
    try:
        from PIL import ImageCms

        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if im.mode == "CMYK" and final == "RGBA":
            return None
        if im.mode == "RGBA" and final != "RGBA":
            return None
        return ImageCms.profileToProfile(im, source, _srgb_profile(), outputMode=final,
                                         renderingIntent=ImageCms.Intent.PERCEPTUAL)
    except Exception:  # malformed profile, colour-space mismatch, no littlecms: ignore the profile
        return None


def _encode(im: Image.Image, *, jpeg_threshold: int, jpeg_quality: int) -> PreparedImage:
    im.info = {}  # drop EXIF, ICC, XMP, text chunks, dpi...: nothing of it reaches the output
    width, height = im.size
    png = _save(im, "PNG", optimize=False)
    if len(png) <= jpeg_threshold:
        return PreparedImage(png, "image/png", width, height)

    if im.mode == "RGBA":  # JPEG has no alpha: flatten onto white
        flat = Image.new("RGB", im.size, (255, 255, 255))
        flat.paste(im, mask=im.getchannel("A"))
        im = flat
    elif im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    qualities = [jpeg_quality] + [q for q in _FALLBACK_QUALITIES if q < jpeg_quality]
    jpeg = b""
    for quality in qualities:
        jpeg = _save(im, "JPEG", quality=quality)
        if len(jpeg) <= jpeg_threshold:
            break
    return PreparedImage(jpeg, "image/jpeg", width, height)


def _save(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()
