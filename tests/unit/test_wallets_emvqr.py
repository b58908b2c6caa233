"""EMVCo QR codec: exact errors (tag and position), Chinese names, round trips (hypothesis), QR images."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posgate.errors import DecodeError, EncodeError
from posgate.wallets import qrimage
from posgate.wallets.emvqr import (
    MerchantAccount,
    MerchantQr,
    amount_fen,
    amount_text,
    crc16_ccitt_false,
    decode_objects,
    decode_payload,
    encode_payload,
    payload_crc,
)
from posgate.wallets.errors import QrDecodeError, QrEncodeError

WECHAT = MerchantAccount("26", "com.tencent.wechatpay", (("01", "weixin://wxpay/bizpayurl?pr=p4lpSuKzz"),))


def _qr(**kw: object) -> MerchantQr:
    base: dict[str, object] = dict(
        merchant_accounts=(WECHAT,), mcc="5812", amount="12.50", name="小杨生煎(吴江路店)", city="上海"
    )
    base.update(kw)
    return MerchantQr(**base)  # type: ignore[arg-type]


def _with_crc(body: str) -> str:
    return body + "6304" + payload_crc(body + "6304")


def test_chinese_name_length_counts_characters() -> None:
    payload = _qr().to_payload()
    assert "5910小杨生煎(吴江路店)" in payload  # 10 characters, 26 bytes in UTF-8
    assert "6002上海" in payload
    back = MerchantQr.from_payload(payload)
    assert back.name == "小杨生煎(吴江路店)" and back.city == "上海"
    assert back == _qr()


def test_dynamic_order_contract_fields() -> None:
    payload = _qr(
        amount=amount_text(123456), additional=(("01", "B1"), ("05", "REF1"), ("07", "T0000001"))
    ).to_payload()
    objects = dict(decode_payload(payload))
    assert objects["01"] == "12" and objects["53"] == "156" and objects["54"] == "1234.56"
    assert objects["58"] == "CN" and objects["59"] and objects["60"]
    assert payload[-4:] == f"{crc16_ccitt_false(payload[:-4].encode()):04X}"
    assert MerchantQr.from_payload(payload).additional_field("bill_number") == "B1"


@pytest.mark.parametrize(
    ("payload", "message", "tag", "pos"),
    [
        ("", "empty payload", "00", 0),
        ("000201010212X", "tag 'X' at position 12: an ID is two digits", "X", 12),
        ("00020101021252", "tag 52: length '' at position 14 is not two digits", "52", 14),
        ("0002010102125A", "tag '5A' at position 12: an ID is two digits", "5A", 12),
        ("00020101021252AB", "tag 52: length 'AB' at position 14 is not two digits", "52", 14),
        (
            "000201010212520958",
            "tag 52: length 9 at position 14 runs past the end (2 characters left)",
            "52",
            14,
        ),
        ("000201010212520000", "tag 52: length 00 at position 14", "52", 14),
        (_with_crc("000202"), "tag 00 at position 0: the payload must begin with 000201", "00", 0),
        (
            "000201010212",
            "tag 63: the CRC (6304 and four hex digits) must be the last object (position 4)",
            "63",
            4,
        ),
    ],
)
def test_decode_errors_name_tag_and_position(payload: str, message: str, tag: str, pos: int) -> None:
    with pytest.raises(QrDecodeError) as info:
        decode_payload(payload)
    assert str(info.value) == message
    assert (info.value.field, info.value.pos) == (tag, pos)
    assert isinstance(info.value, DecodeError)


def test_wrong_crc_names_tag_63_and_its_position() -> None:
    good = _qr().to_payload()
    bad = good[:-4] + ("0000" if good[-4:] != "0000" else "0001")
    with pytest.raises(QrDecodeError) as info:
        decode_payload(bad)
    assert (
        str(info.value)
        == f"tag 63 at position {len(good) - 8}: CRC '{bad[-4:]}' is wrong (computed {good[-4:]})"
    )


def test_template_errors_are_placed_in_the_whole_payload() -> None:
    body = "000201010212" + "2606" + "0102AB" + "52045812530315654031.05802CN5902AB6002CD"
    with pytest.raises(QrDecodeError) as info:
        MerchantQr.from_payload(_with_crc(body))
    assert str(info.value) == "tag 26.00 at position 16: the globally unique identifier must come first"
    body = "000201010212" + "2608" + "00051234" + "52045812530315654031.05802CN5902AB6002CD"
    with pytest.raises(QrDecodeError) as info:
        MerchantQr.from_payload(_with_crc(body))
    assert str(info.value) == "tag 26.00: length 5 at position 18 runs past the end (4 characters left)"
    assert info.value.pos == 18


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("01", "13"), "tag 01 at position 6: '13' is neither 11 nor 12"),
        (("52", "58A2"), "tag 52 at position 82: '58A2' is not 4 digits"),
        (("54", "1.234"), "tag 54 at position 97: amount '1.234' is not digits with at most two decimals"),
        (("54", "-5"), "tag 54 at position 97: amount '-5' is not digits with at most two decimals"),
    ],
)
def test_field_errors(change: tuple[str, str], message: str) -> None:
    objects = [
        change if tag == change[0] else (tag, value) for tag, value in decode_payload(_qr().to_payload())
    ]
    with pytest.raises(QrDecodeError) as info:
        MerchantQr.from_payload(encode_payload(objects))
    assert str(info.value) == message


def test_missing_mandatory_field() -> None:
    objects = [(t, v) for t, v in decode_payload(_qr().to_payload()) if t != "59"]
    with pytest.raises(QrDecodeError, match=r"^tag 59: missing \(mandatory\)$"):
        MerchantQr.from_payload(encode_payload(objects))


def test_duplicate_tag_is_refused() -> None:
    objects = [*decode_payload(_qr().to_payload()), ("52", "5812")]
    with pytest.raises(QrDecodeError, match=r"^tag 52 at position \d+: appears twice$"):
        decode_payload(encode_payload(objects))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"name": "x" * 26}, "tag 59: 26 characters (at most 25)"),
        ({"city": ""}, "tag 60: missing"),
        ({"amount": None}, "tag 54: a dynamic (12) code carries the amount"),
        ({"amount": "1,00"}, "tag 54: amount '1,00' is not digits and decimals"),
        ({"mcc": "58"}, "tag 52: '58' is not 4 digits"),
        ({"merchant_accounts": ()}, "tags 02–51: at least one merchant account is needed"),
        (
            {"merchant_accounts": (MerchantAccount("26", "g", (("01", "x" * 99),)),)},
            "tag 26: value of 108 characters (at most 99)",
        ),
        ({"additional": (("05", ""),)}, "tag 62.05: empty value (leave the object out instead)"),
        ({"point_of_initiation": "10"}, "tag 01: '10' is neither 11 nor 12"),
    ],
)
def test_encode_errors_name_the_tag(kw: dict[str, object], message: str) -> None:
    with pytest.raises(QrEncodeError) as info:
        _qr(**kw).to_payload()
    assert str(info.value) == message
    assert isinstance(info.value, EncodeError)


def test_static_code_has_no_amount() -> None:
    payload = _qr(point_of_initiation="11", amount=None).to_payload()
    qr = MerchantQr.from_payload(payload)
    assert qr.amount is None and qr.amount_fen is None and not qr.dynamic


def test_amounts_are_integer_fen() -> None:
    assert [amount_text(f) for f in (1, 10, 100, 99999999)] == ["0.01", "0.10", "1.00", "999999.99"]
    assert [amount_fen(t) for t in ("0.01", "0.1", "1", "999999.99")] == [1, 10, 100, 99999999]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(QrEncodeError):
            amount_text(bad)  # type: ignore[arg-type]


# -- property tests -------------------------------------------------------------------------------------

_text = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5),
    ),
    min_size=1,
)
_tag = st.integers(min_value=0, max_value=99).map(lambda n: f"{n:02d}")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_tag, _text.filter(lambda s: len(s) <= 99)), max_size=8))
def test_objects_round_trip(objects: list[tuple[str, str]]) -> None:
    from posgate.wallets.emvqr import encode_objects

    assert decode_objects(encode_objects(objects)) == tuple(objects)


@settings(max_examples=200, deadline=None)
@given(
    name=_text.filter(lambda s: len(s) <= 25 and s.strip() == s),
    city=_text.filter(lambda s: len(s) <= 15),
    fen=st.integers(min_value=1, max_value=10**10),
    label=_text.filter(lambda s: len(s) <= 25),
    dynamic=st.booleans(),
)
def test_merchant_qr_round_trip_and_crc(name: str, city: str, fen: int, label: str, dynamic: bool) -> None:
    qr = MerchantQr(
        merchant_accounts=(WECHAT,),
        mcc="5812",
        name=name,
        city=city,
        amount=amount_text(fen) if dynamic else None,
        point_of_initiation="12" if dynamic else "11",
        additional=(("05", label),),
    )
    payload = qr.to_payload()
    assert MerchantQr.from_payload(payload) == qr
    assert int(payload[-4:], 16) == crc16_ccitt_false(payload[:-4].encode("utf-8"))
    # the CRC catches every single-character change of the body
    i = len(payload) // 2
    changed = payload[:i] + ("A" if payload[i] != "A" else "B") + payload[i + 1 :]
    with pytest.raises(DecodeError):
        MerchantQr.from_payload(changed)


# -- images ---------------------------------------------------------------------------------------------


def test_png_svg_and_terminal_text() -> None:
    payload = _qr().to_payload()
    image = qrimage.png(payload)
    assert image[:8] == b"\x89PNG\r\n\x1a\n"
    assert qrimage.svg(payload).startswith("<svg")
    text = qrimage.terminal_text(payload)
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1 and set(text) <= {"█", "▀", "▄", " ", "\n"}
    assert qrimage.terminal_text(payload, invert=True) != text


@pytest.mark.skipif(shutil.which("zbarimg") is None, reason="zbarimg (Debian zbar-tools) not installed")
def test_png_decodes_back_to_the_payload_with_a_real_reader(tmp_path) -> None:  # type: ignore[no-untyped-def]
    payload = _qr().to_payload()
    path = tmp_path / "qr.png"
    path.write_bytes(qrimage.png(payload))
    out = subprocess.run(["zbarimg", "-q", "--raw", str(path)], capture_output=True, check=True)
    assert out.stdout.decode("utf-8").rstrip("\n") == payload
