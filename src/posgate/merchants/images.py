"""Uploaded photos: JPEG or PNG decided by the magic bytes AND a full parse, size limits, and nothing but
the image (no polyglots). Pure: bytes in, `ImageInfo` or `FieldError` out.

What is refused, besides a file that is not a JPEG or PNG:
- data after the JPEG EOI or the PNG IEND (an appended ZIP, script, executable);
- an archive inside the image (a ZIP, RAR, 7z or PDF in a metadata segment or chunk, or a ZIP end record in
  the last 64 KiB, where ZIP readers look for it: that is how a ZIP hides in a JPEG comment or a PNG chunk);
- markup: HTML/SVG tags, event handlers (`onload=`) or `javascript:` in the text a JPEG or PNG carries
  (comments, XMP, text chunks); script and executable signatures anywhere in the bytes;
- a decompression bomb: more than `MAX_PIXELS` pixels, or pixels that take more than `MAX_EXPANSION` times
  the file's size once decoded (RGBA, as a browser or thumbnailer holds them).

The byte patterns searched in compressed image data are long enough (5 bytes and more) that random
compressed data does not match by chance (a 5 MiB photo: < 1e-4); short ones are searched only in metadata.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
from dataclasses import dataclass

from PIL import Image

from posgate.merchants.errors import FieldError, UploadTooLarge

MAX_BYTES = 5 * 1024 * 1024
MIN_BYTES = 1024
MAX_PIXELS = 25_000_000  # 6000 x 4000 and a little more; 100 MB once decoded to RGBA
MAX_EXPANSION = 512  # decoded RGBA bytes per file byte: photos are 5-50, blank scans ~300, bombs 1000+
MIN_SIDE = 16
PHOTO_KINDS = ("id_card_front", "id_card_back", "storefront", "interior", "cashier")
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# anywhere in the file: long enough that random compressed image data never matches by chance
_FORBIDDEN = re.compile(
    rb"<\?php|<script|<html|<iframe|<svg[\s/>]|<!doctype|javascript:|TVqQAAMAAAAEAAAA", re.IGNORECASE
)
_ARCHIVE_ANYWHERE = re.compile(rb"Rar!\x1a\x07|7z\xbc\xaf\x27\x1c|%PDF-")
# in metadata (segments and chunks that are not compressed image data)
_ARCHIVE_IN_METADATA = re.compile(
    rb"PK\x03\x04|PK\x01\x02|PK\x05\x06|PK\x06\x06|PK\x06\x07|\x7fELF|MZ\x90\x00"
)
_ZIP_END = b"PK\x05\x06"
_ZIP_END_WINDOW = 65_536 + 22  # a ZIP reader looks for its end record this far from the end of the file
# in the text a photo carries (JPEG COM and APPn other than EXIF/ICC, PNG text and unknown chunks)
_MARKUP = re.compile(
    rb"<\s*/?\s*(?:svg|script|html|iframe|object|embed|body|img|a|meta|link|style|foreignobject|form|"
    rb"frame|frameset|base|math|image|use|animate|set|handler)[\s/>]|[\s\"'/;]on[a-z]+\s*=|javascript:",
    re.IGNORECASE,
)
_PNG_IMAGE_DATA = (b"IDAT", b"fdAT")
_PNG_BINARY = (b"IHDR", b"PLTE", b"tRNS", b"cHRM", b"gAMA", b"sBIT", b"sRGB", b"bKGD", b"hIST", b"pHYs")
_PNG_BINARY += (b"sPLT", b"tIME", b"acTL", b"fcTL", b"cICP", b"mDCV", b"cLLI", b"iCCP", b"eXIf")
Region = tuple[int, int, str]  # start, end, "image" (compressed image data) | "binary" | "text"


@dataclass(frozen=True)
class ImageInfo:
    mime: str
    ext: str
    size: int
    width: int
    height: int
    sha256: str


def _png_walk(data: bytes, field: str) -> tuple[int, list[Region]]:
    """Offset just past the IEND chunk, and each chunk's data as a region."""
    pos = len(PNG_MAGIC)
    regions: list[Region] = []
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        start, pos = pos + 8, pos + 12 + length
        what = "image" if kind in _PNG_IMAGE_DATA else "binary" if kind in _PNG_BINARY else "text"
        regions.append((start, min(start + length, len(data)), what))
        if kind == b"IEND":
            return pos, regions
    raise FieldError(field, "PNG has no IEND chunk (truncated file)")


def _jpeg_walk(data: bytes, field: str) -> tuple[int, list[Region]]:
    """Offset just past the EOI marker, walking the segments and the entropy-coded scans; each segment's
    payload and each scan's data as a region."""
    pos = 2
    size = len(data)
    regions: list[Region] = []
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            raise FieldError(field, f"JPEG segment expected at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            return pos + 2, regions
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        start, pos = pos + 4, pos + 2 + length
        payload = data[start : start + 14]
        binary = (
            marker in (0xC4, 0xDB, 0xDD, 0xDA)  # tables, restart interval, scan header
            or 0xC0 <= marker <= 0xCF  # frame headers
            or (marker == 0xE1 and payload.startswith(b"Exif\x00"))
            or (marker == 0xE2 and payload.startswith(b"ICC_PROFILE\x00"))
            or (marker == 0xE0 and payload.startswith((b"JFIF\x00", b"JFXX\x00")))
            or (marker == 0xE2 and payload.startswith(b"MPF\x00"))
            or (marker == 0xED and payload.startswith(b"Photoshop 3.0\x00"))  # may hold a thumbnail
            or (marker == 0xEE and payload.startswith(b"Adobe"))
        )
        regions.append((start, min(pos, size), "binary" if binary else "text"))
        if marker == 0xDA:  # start of scan: skip entropy-coded data up to the next real marker
            scan = pos
            while True:  # (bytes.find, not a Python loop over every byte of a 5 MiB scan)
                found = data.find(b"\xff", pos, size - 1)
                if found < 0:
                    pos = max(scan, size - 1)
                    break
                pos = found
                if data[pos + 1] != 0x00 and not 0xD0 <= data[pos + 1] <= 0xD7:
                    break
                pos += 1
            regions.append((scan, pos, "image"))
    if pos + 2 <= size and data[pos : pos + 2] == b"\xff\xd9":
        return pos + 2, regions
    raise FieldError(field, "JPEG has no end-of-image marker (truncated file)")


def _check_content(data: bytes, regions: list[Region], field: str) -> None:
    """No script, markup or archive anywhere it could be read as one (see the module docstring)."""
    for start, end, what in regions:
        if what == "text" and _MARKUP.search(data, start, end):
            raise FieldError(field, "contains markup (HTML or SVG) in its metadata")
    archive = _ARCHIVE_ANYWHERE.search(data) or data.rfind(_ZIP_END, max(0, len(data) - _ZIP_END_WINDOW)) >= 0
    for start, end, what in regions:
        if what != "image" and _ARCHIVE_IN_METADATA.search(data, start, end):
            archive = True
    if archive:
        raise FieldError(field, "contains an archive or document (a polyglot file)")


def inspect_image(data: bytes, field: str) -> ImageInfo:
    """Accept a JPEG or PNG photo for upload field `field`, or raise `FieldError` (413 when too large)."""
    if len(data) > MAX_BYTES:
        raise UploadTooLarge(field, f"is {len(data)} bytes, at most {MAX_BYTES} (5 MiB) allowed")
    if len(data) < MIN_BYTES:
        raise FieldError(field, f"is {len(data)} bytes, at least {MIN_BYTES} (1 KiB) required")
    if data.startswith(JPEG_MAGIC):
        mime, ext, fmt, walk = "image/jpeg", "jpg", "JPEG", _jpeg_walk
    elif data.startswith(PNG_MAGIC):
        mime, ext, fmt, walk = "image/png", "png", "PNG", _png_walk
    else:
        raise FieldError(field, "must be a JPEG or PNG image (content is neither)")
    if _FORBIDDEN.search(data):
        raise FieldError(field, "contains script or executable content")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if image.format != fmt:
                raise FieldError(field, f"content parses as {image.format}, not {fmt}")
            if width * height > MAX_PIXELS:
                raise FieldError(field, f"is {width}x{height} pixels, at most {MAX_PIXELS} allowed")
            if width * height * 4 > MAX_EXPANSION * len(data):
                raise FieldError(
                    field,
                    f"is {width}x{height} pixels from {len(data)} bytes: it decodes to more than "
                    f"{MAX_EXPANSION} times its size (a decompression bomb)",
                )
            image.verify()
    except FieldError:
        raise
    except Exception:
        raise FieldError(field, f"is not a valid {fmt} image (it does not parse)") from None
    if min(width, height) < MIN_SIDE:
        raise FieldError(field, f"is {width}x{height} pixels, at least {MIN_SIDE} on each side required")
    end, regions = walk(data, field)
    if end != len(data):
        raise FieldError(field, f"has data after the end of the {fmt} image")
    _check_content(data, regions, field)
    return ImageInfo(mime, ext, len(data), width, height, hashlib.sha256(data).hexdigest())
