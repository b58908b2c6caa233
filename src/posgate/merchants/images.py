"""Uploaded photos: JPEG or PNG decided by the magic bytes AND a full parse, size limits, and nothing
before or after the image (no polyglots: data after the JPEG EOI or the PNG IEND is refused, and so are
script or executable signatures anywhere in the bytes). Pure: bytes in, `ImageInfo` or `FieldError` out.
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass

from PIL import Image

from posgate.merchants.errors import FieldError, UploadTooLarge

MAX_BYTES = 5 * 1024 * 1024
MIN_BYTES = 1024
MAX_PIXELS = 40_000_000
MIN_SIDE = 16
PHOTO_KINDS = ("id_card_front", "id_card_back", "storefront", "interior", "cashier")
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# long enough that random compressed image data never matches by chance (a 5 MiB photo: < 1e-3)
_FORBIDDEN = (b"<?php", b"<script", b"<html", b"<iframe", b"TVqQAAMAAAAEAAAA")


@dataclass(frozen=True)
class ImageInfo:
    mime: str
    ext: str
    size: int
    width: int
    height: int
    sha256: str


def _png_end(data: bytes, field: str) -> int:
    """Offset just past the IEND chunk, walking the chunks."""
    pos = len(PNG_MAGIC)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        pos += 12 + length
        if kind == b"IEND":
            return pos
    raise FieldError(field, "PNG has no IEND chunk (truncated file)")


def _jpeg_end(data: bytes, field: str) -> int:
    """Offset just past the EOI marker, walking the segments and the entropy-coded scans."""
    pos = 2
    size = len(data)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            raise FieldError(field, f"JPEG segment expected at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            return pos + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
        if marker == 0xDA:  # start of scan: skip entropy-coded data up to the next real marker
            while pos + 1 < size:
                if data[pos] == 0xFF and data[pos + 1] != 0x00 and not 0xD0 <= data[pos + 1] <= 0xD7:
                    break
                pos += 1
    if pos + 2 <= size and data[pos : pos + 2] == b"\xff\xd9":
        return pos + 2
    raise FieldError(field, "JPEG has no end-of-image marker (truncated file)")


def inspect_image(data: bytes, field: str) -> ImageInfo:
    """Accept a JPEG or PNG photo for upload field `field`, or raise `FieldError` (413 when too large)."""
    if len(data) > MAX_BYTES:
        raise UploadTooLarge(field, f"is {len(data)} bytes, at most {MAX_BYTES} (5 MiB) allowed")
    if len(data) < MIN_BYTES:
        raise FieldError(field, f"is {len(data)} bytes, at least {MIN_BYTES} (1 KiB) required")
    if data.startswith(JPEG_MAGIC):
        mime, ext, fmt, end = "image/jpeg", "jpg", "JPEG", _jpeg_end
    elif data.startswith(PNG_MAGIC):
        mime, ext, fmt, end = "image/png", "png", "PNG", _png_end
    else:
        raise FieldError(field, "must be a JPEG or PNG image (content is neither)")
    lowered = data.lower()
    for signature in _FORBIDDEN:
        if signature.lower() in lowered:
            raise FieldError(field, "contains script or executable content")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if image.format != fmt:
                raise FieldError(field, f"content parses as {image.format}, not {fmt}")
            if width * height > MAX_PIXELS:
                raise FieldError(field, f"is {width}x{height} pixels, at most {MAX_PIXELS} allowed")
            image.verify()
    except FieldError:
        raise
    except Exception:
        raise FieldError(field, f"is not a valid {fmt} image (it does not parse)") from None
    if min(width, height) < MIN_SIDE:
        raise FieldError(field, f"is {width}x{height} pixels, at least {MIN_SIDE} on each side required")
    if end(data, field) != len(data):
        raise FieldError(field, f"has data after the end of the {fmt} image")
    return ImageInfo(mime, ext, len(data), width, height, hashlib.sha256(data).hexdigest())
