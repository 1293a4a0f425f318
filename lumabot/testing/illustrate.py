"""Pictures the fake Luma draws when asked to illustrate (the demo): an image shows its prompt
written on a pattern that prompt alone decides; an edit is visibly its source, changed by the
instruction, with the instruction written on it. The tests' default stays a flat colour per
prompt, which they check pixel by pixel."""
from __future__ import annotations

import hashlib
import io
import math

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

# Words an instruction may hold and what they do to the source, so "make it night" looks like night.
_MOODS: list[tuple[tuple[str, ...], tuple[int, int, int], float, float]] = [
    # words, tint, how much tint, brightness
    (("night", "dark", "midnight"), (20, 30, 90), 0.45, 0.45),
    (("winter", "snow", "ice", "frost"), (225, 235, 255), 0.45, 1.15),
    (("sunset", "dusk", "golden", "warm", "fire"), (255, 140, 40), 0.35, 1.0),
    (("day", "bright", "sun", "noon"), (255, 245, 200), 0.25, 1.3),
]


def _palette(text: str) -> list[tuple[int, int, int]]:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [(digest[i], digest[i + 1], digest[i + 2]) for i in range(0, 12, 3)]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(10, size))


def _caption(img: Image.Image, text: str, *, top: bool) -> None:
    """Write `text` on a translucent band across the top or bottom of `img`, wrapped to fit."""
    width, height = img.size
    font = _font(height // 14)
    draw = ImageDraw.Draw(img, "RGBA")
    words, lines, line = text.split(), [], ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if line and draw.textlength(candidate, font=font) > width * 0.9:
            lines.append(line)
            line = word
        else:
            line = candidate
    lines.append(line)
    line_h = int(font.size * 1.3) if isinstance(font, ImageFont.FreeTypeFont) else 14
    band_h = line_h * len(lines) + line_h // 2
    y0 = 0 if top else height - band_h
    draw.rectangle((0, y0, width, y0 + band_h), fill=(0, 0, 0, 150))
    for i, text_line in enumerate(lines):
        x = (width - draw.textlength(text_line, font=font)) / 2
        draw.text((x, y0 + line_h // 4 + i * line_h), text_line, font=font, fill=(255, 255, 255, 255))


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.convert("RGB").save(buf, format="JPEG", quality=90)
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


def draw_image(prompt: str, width: int, height: int, fmt: str) -> bytes:
    """A generated image: a sky-and-ground gradient with a sun and hills in the prompt's colours,
    the prompt written across the top."""
    sky, ground, sun, hill = _palette(prompt)
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    horizon = int(height * 0.62)
    for y in range(height):
        a, b, t = (sky, hill, y / horizon) if y < horizon else (hill, ground, (y - horizon) / (height - horizon))
        draw.line((0, y, width, y), fill=tuple(int(a[i] + (b[i] - a[i]) * t) for i in range(3)))
    radius = height // 7
    cx, cy = int(width * 0.72), int(height * 0.38)
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=sun)
    points = [(x, horizon - int(height * 0.08 * (1 + math.sin(x / width * 7 + sky[0])))) for x in range(0, width + 8, 8)]
    draw.polygon([(0, height), *points, (width, height)], fill=hill)
    _caption(img, prompt, top=True)
    return _encode(img, fmt)


def draw_edit(source: bytes, instruction: str, width: int, height: int, fmt: str) -> bytes:
    """An edit: the source image, resized to the output, toned by what the instruction asks for
    (darker and blue for night, pale for winter...; otherwise tinted in the instruction's colour),
    the instruction written across the bottom."""
    with Image.open(io.BytesIO(source)) as opened:
        img = ImageOps.exif_transpose(opened).convert("RGB").resize((width, height))
    words = instruction.lower()
    tint, amount, brightness = _palette(instruction)[0], 0.15, 1.0
    for keys, mood_tint, mood_amount, mood_brightness in _MOODS:
        if any(k in words for k in keys):
            tint, amount, brightness = mood_tint, mood_amount, mood_brightness
            break
    img = ImageEnhance.Brightness(img).enhance(brightness)
    img = Image.blend(img, Image.new("RGB", img.size, tint), amount)
    if "moon" in words:  # something added: drawn where the sky is
        r = height // 9
        ImageDraw.Draw(img).ellipse((width // 5 - r, height // 3 - r, width // 5 + r, height // 3 + r),
                                    fill=(240, 236, 210))
    _caption(img, f"edit: {instruction}", top=False)
    return _encode(img, fmt)
