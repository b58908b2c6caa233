"""EMVCo merchant-presented QR codec (EMV QRCPS Merchant-Presented Mode): the TLV payload and its CRC.

A payload is a string of data objects `ID LL value`: a two-digit ID, a two-digit length and the value.
Lengths count *characters*, not bytes (a Chinese merchant name of four characters has length 04); the CRC
(ID 63, always last, length 04) is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over the UTF-8 bytes of
the whole payload up to and including `6304`, in four upper-case hex digits.

Layer 1 (`decode_objects` / `encode_objects`, `decode_payload` / `encode_payload`) reads and writes the
objects in their order, so any payload round-trips byte for byte. Layer 2 (`MerchantQr`) gives them names:

| ID | meaning |
|---|---|
| 00 | payload format indicator, `01` |
| 01 | point of initiation: `11` static, `12` dynamic (one transaction) |
| 02–25 | primitive merchant account information reserved for the networks (15–16: UnionPay) |
| 26–51 | merchant account templates: sub-ID 00 a globally unique identifier (AID or reverse domain) |
| 52 | merchant category code (4 digits) · 53 currency (ISO 4217 numeric, `156` CNY) · 54 amount |
| 58 | country (`CN`) · 59 merchant name (≤25) · 60 city (≤15) · 61 postal code |
| 62 | additional data: 01 bill number, 02 mobile, 03 store label, 04 loyalty, 05 reference label, |
|    | 06 customer label, 07 terminal label, 08 purpose, 09 additional consumer data request |
| 64 | merchant information in an alternate language: 00 language, 01 name, 02 city |
| 63 | CRC |

A decode error is a `QrDecodeError` naming the tag (`"62.05"` inside a template) and the character position.

>>> qr = MerchantQr(merchant_accounts=(MerchantAccount("26", "com.example.pay", (("01", "M1"),)),),
...                 mcc="5812", amount="12.50", name="小杨餐馆", city="上海",
...                 additional=(("05", "ORDER1"),))
>>> payload = qr.to_payload()
>>> payload[:12], payload[-8:-4]
('000201010212', '6304')
>>> MerchantQr.from_payload(payload).name, MerchantQr.from_payload(payload).amount_fen
('小杨餐馆', 1250)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from posgate.wallets.errors import QrDecodeError, QrEncodeError

DataObjects = tuple[tuple[str, str], ...]

PAYLOAD_FORMAT = "01"
STATIC = "11"
DYNAMIC = "12"
CNY = "156"
CHINA = "CN"
MAX_PAYLOAD_CHARS = 512
MERCHANT_TEMPLATE_TAGS = frozenset(f"{n:02d}" for n in range(26, 52))
NETWORK_PRIMITIVE_TAGS = frozenset(f"{n:02d}" for n in range(2, 26))
UNIONPAY_TAGS = frozenset({"15", "16"})
ADDITIONAL_DATA_NAMES = {
    "01": "bill_number",
    "02": "mobile_number",
    "03": "store_label",
    "04": "loyalty_number",
    "05": "reference_label",
    "06": "customer_label",
    "07": "terminal_label",
    "08": "purpose",
    "09": "consumer_data_request",
}
_AMOUNT = re.compile(r"^(\d{1,10})(?:\.(\d{1,2}))?$")
_DIGITS = re.compile(r"^\d+$")


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor).

    >>> hex(crc16_ccitt_false(b"123456789"))  # the catalogue check value
    '0x29b1'
    """
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def payload_crc(text_up_to_6304: str) -> str:
    """The CRC value (four upper-case hex digits) for a payload text ending in `6304`."""
    return f"{crc16_ccitt_false(text_up_to_6304.encode('utf-8')):04X}"


def encode_objects(objects: Iterable[tuple[str, str]], parent: str = "") -> str:
    """Data objects → `ID LL value ...` (lengths in characters). Raises `QrEncodeError` naming the tag."""
    out = []
    for tag, value in objects:
        where = f"{parent}.{tag}" if parent else tag
        if len(tag) != 2 or not tag.isdigit() or not tag.isascii():
            raise QrEncodeError(f"tag {where!r}: an ID is two digits", field=where)
        if not value:
            raise QrEncodeError(f"tag {where}: empty value (leave the object out instead)", field=where)
        if len(value) > 99:
            raise QrEncodeError(f"tag {where}: value of {len(value)} characters (at most 99)", field=where)
        out.append(f"{tag}{len(value):02d}{value}")
    return "".join(out)


def decode_objects(text: str, parent: str = "", offset: int = 0) -> DataObjects:
    """`ID LL value ...` → data objects in order. `parent` and `offset` place a template's errors within
    the whole payload."""
    objects: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        tag = text[pos : pos + 2]
        where = f"{parent}.{tag}" if parent else tag
        if len(tag) < 2 or not (tag.isdigit() and tag.isascii()):
            raise QrDecodeError(
                f"tag {where!r} at position {offset + pos}: an ID is two digits",
                field=where,
                pos=offset + pos,
            )
        length_text = text[pos + 2 : pos + 4]
        if len(length_text) < 2 or not (length_text.isdigit() and length_text.isascii()):
            raise QrDecodeError(
                f"tag {where}: length {length_text!r} at position {offset + pos + 2} is not two digits",
                field=where,
                pos=offset + pos + 2,
            )
        length = int(length_text)
        start = pos + 4
        if length == 0:
            raise QrDecodeError(
                f"tag {where}: length 00 at position {offset + pos + 2}", field=where, pos=offset + pos + 2
            )
        if start + length > len(text):
            raise QrDecodeError(
                f"tag {where}: length {length} at position {offset + pos + 2} runs past the end"
                f" ({len(text) - start} characters left)",
                field=where,
                pos=offset + pos + 2,
            )
        objects.append((tag, text[start : start + length]))
        pos = start + length
    return tuple(objects)


def encode_payload(objects: Iterable[tuple[str, str]]) -> str:
    """Objects (without 63) → the payload with its CRC appended as the last object."""
    body = encode_objects((tag, value) for tag, value in objects)
    if not body.startswith("000201"):
        raise QrEncodeError("tag 00: the payload format indicator 01 must come first", field="00")
    text = body + "6304"
    payload = text + payload_crc(text)
    if len(payload) > MAX_PAYLOAD_CHARS:
        raise QrEncodeError(f"payload of {len(payload)} characters (at most {MAX_PAYLOAD_CHARS})", field="63")
    return payload


def decode_payload(payload: str) -> DataObjects:
    """The payload → its objects in order, 63 excluded, after checking the frame: 00 = `01` first, 63 last
    with the right CRC."""
    if not isinstance(payload, str) or not payload:
        raise QrDecodeError("empty payload", field="00", pos=0)
    if len(payload) > MAX_PAYLOAD_CHARS:
        raise QrDecodeError(
            f"payload of {len(payload)} characters (at most {MAX_PAYLOAD_CHARS})", field="00", pos=0
        )
    objects = decode_objects(payload)
    if objects[0] != ("00", PAYLOAD_FORMAT):
        raise QrDecodeError("tag 00 at position 0: the payload must begin with 000201", field="00", pos=0)
    crc_pos = len(payload) - 8
    tag, value = objects[-1]
    if tag != "63" or len(value) != 4 or payload[crc_pos : crc_pos + 4] != "6304":
        raise QrDecodeError(
            f"tag 63: the CRC (6304 and four hex digits) must be the last object"
            f" (position {max(crc_pos, 0)})",
            field="63",
            pos=max(crc_pos, 0),
        )
    seen_63 = [i for i, (t, _) in enumerate(objects) if t == "63"]
    if len(seen_63) > 1:
        raise QrDecodeError("tag 63: more than one CRC", field="63", pos=crc_pos)
    expected = payload_crc(payload[: crc_pos + 4])
    if value.upper() != expected:
        raise QrDecodeError(
            f"tag 63 at position {crc_pos}: CRC {value!r} is wrong (computed {expected})",
            field="63",
            pos=crc_pos,
        )
    _check_unique(objects, payload)
    return objects[:-1]


def _check_unique(objects: DataObjects, payload: str) -> None:
    seen: set[str] = set()
    pos = 0
    for tag, value in objects:
        if tag in seen:
            raise QrDecodeError(f"tag {tag} at position {pos}: appears twice", field=tag, pos=pos)
        seen.add(tag)
        pos += 4 + len(value)


def amount_text(fen: int) -> str:
    """Integer fen → the tag 54 text in yuan with two decimals.

    >>> amount_text(2372), amount_text(5), amount_text(1_000_000)
    ('23.72', '0.05', '10000.00')
    """
    if not isinstance(fen, int) or isinstance(fen, bool) or fen <= 0:
        raise QrEncodeError(f"tag 54: amount {fen!r} fen is not a positive integer", field="54")
    whole, cents = divmod(fen, 100)
    text = f"{whole}.{cents:02d}"
    if len(text) > 13:
        raise QrEncodeError(f"tag 54: amount {text} is longer than 13 characters", field="54")
    return text


def amount_fen(text: str) -> int:
    """The tag 54 text → integer fen (no float anywhere).

    >>> amount_fen("23.72"), amount_fen("10"), amount_fen("0.5")
    (2372, 1000, 50)
    """
    match = _AMOUNT.match(text)
    if match is None:
        raise QrDecodeError(f"tag 54: amount {text!r} is not digits with at most two decimals", field="54")
    whole, cents = match.group(1), (match.group(2) or "").ljust(2, "0")
    return int(whole) * 100 + int(cents)


@dataclass(frozen=True)
class MerchantAccount:
    """One merchant account information object: a template (26–51: `gui` in sub-ID 00 and `fields`) or a
    network's primitive (02–25, e.g. UnionPay's 15: `gui` is then the whole value, `fields` empty)."""

    tag: str
    gui: str
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def is_template(self) -> bool:
        return self.tag in MERCHANT_TEMPLATE_TAGS

    def field(self, sub_tag: str) -> str | None:
        return dict(self.fields).get(sub_tag)

    def to_object(self) -> tuple[str, str]:
        if self.tag in NETWORK_PRIMITIVE_TAGS:
            if self.fields:
                raise QrEncodeError(f"tag {self.tag}: a network primitive has no sub-objects", field=self.tag)
            return self.tag, self.gui
        if self.tag not in MERCHANT_TEMPLATE_TAGS:
            raise QrEncodeError(f"tag {self.tag}: not a merchant account ID (02–51)", field=self.tag)
        if not self.gui or len(self.gui) > 32:
            raise QrEncodeError(
                f"tag {self.tag}.00: the unique identifier takes 1–32 characters", field=self.tag
            )
        return self.tag, encode_objects((("00", self.gui), *self.fields), parent=self.tag)


@dataclass(frozen=True)
class MerchantQr:
    """A merchant-presented QR with named fields. `amount` is the tag 54 text (yuan with decimals for CNY);
    `additional` the objects of 62, `language` of 64; `extra` keeps every other object (55–57, 61 is named,
    80–99 …) so that nothing is lost in a round trip through `from_payload` / `to_payload`."""

    merchant_accounts: tuple[MerchantAccount, ...]
    mcc: str
    name: str
    city: str
    amount: str | None = None
    point_of_initiation: str = DYNAMIC
    currency: str = CNY
    country: str = CHINA
    postal_code: str | None = None
    additional: tuple[tuple[str, str], ...] = ()
    language: tuple[tuple[str, str], ...] = ()
    extra: tuple[tuple[str, str], ...] = field(default=())

    @property
    def amount_fen(self) -> int | None:
        return None if self.amount is None else amount_fen(self.amount)

    @property
    def dynamic(self) -> bool:
        return self.point_of_initiation == DYNAMIC

    def additional_field(self, name_or_tag: str) -> str | None:
        """An additional data (62) field by sub-ID or by name (`bill_number`, `terminal_label` …)."""
        names = {v: k for k, v in ADDITIONAL_DATA_NAMES.items()}
        return dict(self.additional).get(names.get(name_or_tag, name_or_tag))

    def account(self, gui: str) -> MerchantAccount | None:
        return next((a for a in self.merchant_accounts if a.gui == gui), None)

    def objects(self) -> DataObjects:
        """The data objects in ascending ID order (63 excluded), after validation."""
        self.validate()
        objects: list[tuple[str, str]] = [("00", PAYLOAD_FORMAT), ("01", self.point_of_initiation)]
        objects += [account.to_object() for account in self.merchant_accounts]
        objects += [("52", self.mcc), ("53", self.currency)]
        if self.amount is not None:
            objects.append(("54", self.amount))
        objects += [("58", self.country), ("59", self.name), ("60", self.city)]
        if self.postal_code:
            objects.append(("61", self.postal_code))
        if self.additional:
            objects.append(("62", encode_objects(self.additional, parent="62")))
        if self.language:
            objects.append(("64", encode_objects(self.language, parent="64")))
        objects += list(self.extra)
        return tuple(sorted(objects, key=lambda item: item[0]))

    def to_payload(self) -> str:
        return encode_payload(self.objects())

    def validate(self) -> None:
        """Raise `QrEncodeError` naming the first field that is wrong."""
        if self.point_of_initiation not in (STATIC, DYNAMIC):
            raise QrEncodeError(f"tag 01: {self.point_of_initiation!r} is neither 11 nor 12", field="01")
        if not self.merchant_accounts:
            raise QrEncodeError("tags 02–51: at least one merchant account is needed", field="26")
        if len({a.tag for a in self.merchant_accounts}) != len(self.merchant_accounts):
            raise QrEncodeError("tags 02–51: a merchant account ID appears twice", field="26")
        _check_field("52", self.mcc, digits=4)
        _check_field("53", self.currency, digits=3)
        if self.amount is not None:
            _check_field("54", self.amount, max_len=13)
            if _AMOUNT.match(self.amount) is None:
                raise QrEncodeError(f"tag 54: amount {self.amount!r} is not digits and decimals", field="54")
        if self.dynamic and self.amount is None:
            raise QrEncodeError("tag 54: a dynamic (12) code carries the amount", field="54")
        if len(self.country) != 2 or not self.country.isalpha():
            raise QrEncodeError(f"tag 58: country {self.country!r} is not two letters", field="58")
        _check_field("59", self.name, max_len=25)
        _check_field("60", self.city, max_len=15)
        if self.postal_code is not None:
            _check_field("61", self.postal_code, max_len=10)
        for tag, _ in self.additional:
            if not ("01" <= tag <= "99"):
                raise QrEncodeError(f"tag 62.{tag}: not an additional data ID", field=f"62.{tag}")
        named = {"00", "01", "52", "53", "54", "58", "59", "60", "61", "62", "63", "64"}
        for tag, _ in self.extra:
            if tag in named or tag in MERCHANT_TEMPLATE_TAGS or tag in NETWORK_PRIMITIVE_TAGS:
                raise QrEncodeError(f"tag {tag}: has its own field, not an extra object", field=tag)

    @classmethod
    def from_payload(cls, payload: str) -> MerchantQr:
        """Decode and validate a payload (CRC, structure, mandatory fields, templates)."""
        objects = decode_payload(payload)
        positions = _positions(objects)
        values = dict(objects)

        def need(tag: str) -> str:
            if tag not in values:
                raise QrDecodeError(f"tag {tag}: missing (mandatory)", field=tag, pos=len(payload) - 8)
            return values[tag]

        accounts = []
        for tag, value in objects:
            if tag in NETWORK_PRIMITIVE_TAGS:
                accounts.append(MerchantAccount(tag, value))
            elif tag in MERCHANT_TEMPLATE_TAGS:
                subs = decode_objects(value, parent=tag, offset=positions[tag] + 4)
                if not subs or subs[0][0] != "00":
                    raise QrDecodeError(
                        f"tag {tag}.00 at position {positions[tag] + 4}: the globally unique identifier"
                        " must come first",
                        field=f"{tag}.00",
                        pos=positions[tag] + 4,
                    )
                accounts.append(MerchantAccount(tag, subs[0][1], tuple(subs[1:])))
        if not accounts:
            raise QrDecodeError("tags 02–51: no merchant account information", field="26", pos=6)
        poi = need("01")
        if poi not in (STATIC, DYNAMIC):
            raise QrDecodeError(f"tag 01 at position 6: {poi!r} is neither 11 nor 12", field="01", pos=6)
        for tag, digits in (("52", 4), ("53", 3)):
            value = need(tag)
            if len(value) != digits or not _DIGITS.match(value):
                raise QrDecodeError(
                    f"tag {tag} at position {positions[tag]}: {value!r} is not {digits} digits",
                    field=tag,
                    pos=positions[tag],
                )
        amount = values.get("54")
        if amount is not None and _AMOUNT.match(amount) is None:
            raise QrDecodeError(
                f"tag 54 at position {positions['54']}: amount {amount!r} is not digits with at most two"
                " decimals",
                field="54",
                pos=positions["54"],
            )
        country = need("58")
        if len(country) != 2:
            raise QrDecodeError(
                f"tag 58 at position {positions['58']}: {country!r} is not two letters",
                field="58",
                pos=positions["58"],
            )
        templates = {}
        for tag in ("62", "64"):
            if tag in values:
                templates[tag] = decode_objects(values[tag], parent=tag, offset=positions[tag] + 4)
        named = {"00", "01", "52", "53", "54", "58", "59", "60", "61", "62", "64"}
        extra = tuple(
            (tag, value)
            for tag, value in objects
            if tag not in named and tag not in MERCHANT_TEMPLATE_TAGS and tag not in NETWORK_PRIMITIVE_TAGS
        )
        return cls(
            merchant_accounts=tuple(accounts),
            mcc=values["52"],
            name=need("59"),
            city=need("60"),
            amount=amount,
            point_of_initiation=poi,
            currency=values["53"],
            country=country,
            postal_code=values.get("61"),
            additional=templates.get("62", ()),
            language=templates.get("64", ()),
            extra=extra,
        )


def _positions(objects: Sequence[tuple[str, str]]) -> dict[str, int]:
    positions, pos = {}, 0
    for tag, value in objects:
        positions.setdefault(tag, pos)
        pos += 4 + len(value)
    return positions


def _check_field(tag: str, value: str, digits: int | None = None, max_len: int | None = None) -> None:
    if not value:
        raise QrEncodeError(f"tag {tag}: missing", field=tag)
    if digits is not None and (len(value) != digits or not _DIGITS.match(value)):
        raise QrEncodeError(f"tag {tag}: {value!r} is not {digits} digits", field=tag)
    if max_len is not None and len(value) > max_len:
        raise QrEncodeError(f"tag {tag}: {len(value)} characters (at most {max_len})", field=tag)
