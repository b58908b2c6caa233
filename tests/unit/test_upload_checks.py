"""The photo checker's polyglot, markup and bomb rules (`merchants/images.py`), with their exact messages,
and the metadata real cameras and editors write (EXIF, XMP, ICC, PNG text), which must still pass."""

from __future__ import annotations

import io

import pytest
from PIL import Image, PngImagePlugin

from posgate.merchants.errors import FieldError
from posgate.merchants.images import inspect_image
from tests.integration.test_upload_polyglots import jpeg_svg, jpeg_zip, png_bomb, png_zip

XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="1"'
    b' xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Camera 1.0"/></rdf:RDF></x:xmpmeta>'
    b'<?xpacket end="w"?>'
)


def _noise(size: tuple[int, int] = (160, 120)) -> Image.Image:
    return Image.effect_noise(size, 64).convert("RGB")


def _message(data: bytes) -> str:
    with pytest.raises(FieldError) as caught:
        inspect_image(data, "storefront")
    return str(caught.value)


def test_camera_and_editor_metadata_passes() -> None:
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"  # Make
    exif[0x0110] = "Model <x> on=1"  # text a camera might write
    _noise().save(out, "JPEG", exif=exif, xmp=XMP, icc_profile=b"\x00" * 200, comment=b"shop front")
    assert inspect_image(out.getvalue(), "storefront").mime == "image/jpeg"
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "GIMP 2.10")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    out = io.BytesIO()
    _noise().save(out, "PNG", pnginfo=info)
    assert inspect_image(out.getvalue(), "storefront").mime == "image/png"


def test_polyglots_markup_and_bombs_are_refused_with_their_reason() -> None:
    assert _message(png_zip()) == "storefront: contains an archive or document (a polyglot file)"
    assert _message(jpeg_zip()) == "storefront: contains an archive or document (a polyglot file)"
    assert _message(jpeg_svg()) == "storefront: contains script or executable content"
    assert _message(png_bomb(2000)) == (
        "storefront: is 2000x2000 pixels from 11735 bytes: it decodes to more than 512 times its size"
        " (a decompression bomb)"
    )
    assert _message(png_bomb()) == "storefront: is 6300x6300 pixels, at most 25000000 allowed"
    out = io.BytesIO()
    _noise().save(out, "JPEG", comment=b'<img src=x onerror="alert(1)">')
    assert _message(out.getvalue()) == "storefront: contains markup (HTML or SVG) in its metadata"
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<a href=javascript:alert(1)>x</a>")
    out = io.BytesIO()
    _noise().save(out, "PNG", pnginfo=info)
    assert _message(out.getvalue()) == "storefront: contains script or executable content"
