"""EMV BER-TLV for field 55: a thin wrapper over `pyemv.tlv` that raises posgate errors.

`decode_tlv` flattens constructed tags into one dict of primitive tags (field 55 is flat in practice).
Repeated tags: pyemv decodes into a dict, so when a tag occurs twice the LAST occurrence wins and the earlier
value is silently lost; a dict cannot hold a tag twice on encode either. Encode anything that legitimately
repeats (issuer scripts 71/72, each with its own 9F18/86) separately and concatenate the bytes.
Tag names are uppercase hex (`"9F26"`). A decoding error quotes a tag only when it is at most 4 bytes long.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyemv.tlv

from posgate.errors import DecodeError, EncodeError

_MAX_TAG_HEX = 8


def decode_tlv(data: bytes) -> dict[str, bytes]:
    """Decode BER-TLV into `{tag: value}`; `DecodeError` (field 55, `pos` = byte offset) if malformed.

    >>> decode_tlv(bytes.fromhex("9F2608A40C02DEFB441C8A9F360200019C0100"))
    {'9F26': b'\\xa4\\x0c\\x02\\xde\\xfbD\\x1c\\x8a', '9F36': b'\\x00\\x01', '9C': b'\\x00'}
    >>> decode_tlv(bytes.fromhex("9F2608A40C"))
    Traceback (most recent call last):
    ...
    posgate.errors.DecodeError: field 55: Tag value malformed, expecting 8 byte(s): tag '9F26', offset 3.
    """
    try:
        return pyemv.tlv.decode(bytes(data), flatten=True)
    except pyemv.tlv.DecodeError as exc:
        raise DecodeError(
            f"field 55: {exc.msg}: {_shown_tag(exc.tag)}, offset {exc.offset}.", 55, exc.offset
        ) from None


def _shown_tag(tag: str) -> str:
    """How an error names a tag: quoted when it can be an EMV tag (at most 4 bytes), otherwise only its
    size — a "tag" of many bytes is the sender's data, which may be a PAN in BCD.

    >>> _shown_tag("9F26"), _shown_tag("1FFF8888888888888888")
    ("tag '9F26'", 'a 10-byte tag (not shown)')
    """
    return f"tag {tag!r}" if len(tag) <= _MAX_TAG_HEX else f"a {len(tag) // 2}-byte tag (not shown)"


def encode_tlv(tags: Mapping[str, bytes]) -> bytes:
    """Encode `{tag: value}` as BER-TLV, in the mapping's order; `EncodeError` (field 55) if a tag is invalid.

    >>> encode_tlv({"9F36": b"\\x00\\x01", "9C": b"\\x00"}).hex().upper()
    '9F360200019C0100'
    """
    for tag, value in tags.items():
        if not isinstance(value, bytes | bytearray):
            kind = type(value).__name__
            raise EncodeError(f"field 55: tag {tag!r} value must be bytes, not {kind}", field=55)
    try:
        return pyemv.tlv.encode(tags)
    except pyemv.tlv.EncodeError as exc:
        raise EncodeError(f"field 55: {exc}", field=55) from None
