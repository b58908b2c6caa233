"""Hostile photos uploaded over real HTTP on loopback (issue 9, finding 6): a PNG that is also a ZIP, a JPEG
that is also a ZIP, a JPEG carrying `<svg onload>`, and a 115 KB PNG that decodes to 119 MB. Each file is
built for real (the ZIP opens with `zipfile`, the images open with Pillow) and must be refused with 422
naming the upload field; a genuine photo is served back with headers that keep a browser from running it."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterator

import pytest
from PIL import Image

from posgate.tools.onboarding_data import form_values, id_number, photo, photo_files
from tests.integration.live_console import LiveConsole, live_console

PAYLOAD = b"<html><body><script>alert(document.cookie)</script></body></html>"


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:  # compressed: no visible <script
        archive.writestr("payload.html", PAYLOAD)
    return out.getvalue()


def _with_comment_length(archive: bytes, length: int) -> bytes:
    """The ZIP with its end record's comment length set: the bytes after it in the host file."""
    end = archive.rfind(b"PK\x05\x06")
    return archive[: end + 20] + struct.pack("<H", length) + archive[end + 22 :]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_zip() -> bytes:
    """A PNG with a ZIP in a private chunk just before IEND (the ZIP's end record 16 bytes from the end)."""
    png = photo("PNG", 21)
    iend = png.rfind(b"IEND") - 4
    return png[:iend] + _chunk(b"ziPf", _with_comment_length(_zip(), 4 + 12)) + png[iend:]


def jpeg_zip() -> bytes:
    """A JPEG with a ZIP in a comment segment just before EOI."""
    jpeg = photo("JPEG", 22)
    archive = _with_comment_length(_zip(), 2)
    comment = b"\xff\xfe" + struct.pack(">H", len(archive) + 2) + archive
    return jpeg[:-2] + comment + jpeg[-2:]


def jpeg_svg() -> bytes:
    """A JPEG whose comment is an SVG that runs script when a browser renders the file as markup."""
    jpeg = photo("JPEG", 23)
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"/>'
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(svg) + 2) + svg + jpeg[2:]


def png_bomb(side: int = 6300) -> bytes:
    """An RGB PNG of side x side black pixels: about 115 KB that decode to 119 MB."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = bytes(1 + 3 * side)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def test_the_hostile_files_are_what_they_claim() -> None:
    for build in (png_zip, jpeg_zip):
        data = build()
        assert zipfile.ZipFile(io.BytesIO(data)).read("payload.html") == PAYLOAD
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    with Image.open(io.BytesIO(jpeg_svg())) as image:
        image.load()
    bomb = png_bomb()
    assert 100_000 < len(bomb) < 130_000
    with Image.open(io.BytesIO(bomb)) as image:
        assert image.size == (6300, 6300) and image.mode == "RGB"  # 119,070,000 bytes once decoded


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveConsole, str]]:
    with live_console(tmp_path_factory.mktemp("uploads")) as live:
        yield live, live.api_key("operator")


HOSTILE = {
    "png_zip": ("storefront", "shop.png", "image/png", png_zip),
    "jpeg_zip": ("interior", "in.jpg", "image/jpeg", jpeg_zip),
    "jpeg_svg": ("cashier", "c.jpg", "image/jpeg", jpeg_svg),
    "png_bomb": ("id_card_back", "id.png", "image/png", png_bomb),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_photo_is_refused_naming_its_field(console: tuple[LiveConsole, str], name: str) -> None:
    live, key = console
    field, file_name, mime, build = HOSTILE[name]
    files = photo_files(30)
    files[field] = (file_name, build(), mime)
    with live.client(key) as client:
        before = client.get("/api/applications").json()
        values = form_values(id_number=id_number(sequence=f"{sorted(HOSTILE).index(name) + 100}"))
        response = client.post("/api/applications", data=values, files=files)
        assert response.status_code == 422, f"{name} accepted: {response.status_code} {response.text[:300]}"
        error = response.json()["error"]
        assert error["field"] == field and error["message"].startswith(f"{field}: "), error
        assert client.get("/api/applications").json() == before  # nothing stored to serve back


def test_a_photo_is_served_back_with_headers_that_keep_a_browser_from_running_it(
    console: tuple[LiveConsole, str],
) -> None:
    live, key = console
    files = photo_files(31)
    with live.client(key) as client:
        filed = client.post(
            "/api/applications", data=form_values(id_number=id_number(sequence="200")), files=files
        )
        assert filed.status_code == 201, filed.text
        app_id = filed.json()["id"]
        for kind, (_name, data, mime) in files.items():
            served = client.get(f"/api/applications/{app_id}/uploads/{kind}")
            assert served.status_code == 200 and served.content == data
            headers = served.headers
            assert headers["content-type"] == mime
            assert headers["x-content-type-options"] == "nosniff"
            policy = [p.strip() for p in headers["content-security-policy"].split(";")]
            assert "default-src 'none'" in policy and "sandbox" in policy, policy
            assert headers["content-disposition"].split(";")[0] in ("inline", "attachment")
