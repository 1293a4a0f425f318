"""Thumbnails of session images and the contact sheet that recaps a session (Pillow)."""

from __future__ import annotations

import io
import math

from PIL import Image

THUMB_SIDE = 256
GAP = 8
BACKGROUND = (24, 24, 28)


def thumbnail(data: bytes, side: int = THUMB_SIDE) -> bytes:
    """A small JPEG of an image (kept in the store for the session's contact sheet)."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.draft("RGB", (side, side))
        img = opened.convert("RGB")
        img.thumbnail((side, side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        img.save(out, "JPEG", quality=88)
        return out.getvalue()


def grid(n: int, max_cols: int = 10) -> tuple[int, int]:
    """(columns, rows) of a sheet of n images: about square, at most `max_cols` wide."""
    cols = max(1, min(max_cols, math.ceil(math.sqrt(n))))
    return cols, max(1, math.ceil(n / cols))


def cell_box(index: int, cols: int, side: int = THUMB_SIDE, gap: int = GAP) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) of cell `index` on the sheet."""
    row, col = divmod(index, cols)
    left, top = gap + col * (side + gap), gap + row * (side + gap)
    return left, top, left + side, top + side


def contact_sheet(thumbs: list[bytes], side: int = THUMB_SIDE, gap: int = GAP, max_cols: int = 10) -> bytes:
    """One PNG with every thumbnail in a grid, in order, each centred in its cell."""
    cols, rows = grid(len(thumbs), max_cols)
    sheet = Image.new("RGB", (gap + cols * (side + gap), gap + rows * (side + gap)), BACKGROUND)
    for i, data in enumerate(thumbs):
        with Image.open(io.BytesIO(data)) as opened:
            img = opened.convert("RGB")
            img.thumbnail((side, side))
            left, top, _, _ = cell_box(i, cols, side, gap)
            sheet.paste(img, (left + (side - img.width) // 2, top + (side - img.height) // 2))
    out = io.BytesIO()
    sheet.save(out, "PNG")
    return out.getvalue()
