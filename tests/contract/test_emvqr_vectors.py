"""EMVCo merchant-presented QR: the published examples, byte for byte.

Sources of the vectors (each payload below is copied exactly as published, CRC included):
- `EMVCO_SAMPLE`: the worked example of the EMV QR Code Specification for Payment Systems (EMV QRCPS),
  Merchant-Presented Mode v1.0/v1.1, Annex (merchant "BEST TRANSPORT", Beijing, CNY 23.72, alternate-language
  template in Chinese, CRC A13A) — the spec PDF is mirrored in github.com/mvallim/emv-qrcode (docs/), and the
  payload is the "official sample" of the open-source implementations github.com/dongri/emvco-qrcode
  (README, MPM decode) and the Elixir `exemvi` tests, which list its objects as we assert them here.
- `DONGRI_UNIONPAY_TAG`: the encode example of github.com/dongri/emvco-qrcode (README, "MPM Encode"): merchant
  account information in ID 15 (a primitive reserved for UnionPay), bill number / reference / terminal labels.
- CRC-16/CCITT-FALSE check value 0x29B1 over "123456789": the CRC catalogue (reveng) entry for
  CRC-16/CCITT-FALSE (a.k.a. CRC-16/IBM-3740).
"""

from __future__ import annotations

import pytest

from posgate.wallets.emvqr import (
    MerchantAccount,
    MerchantQr,
    crc16_ccitt_false,
    decode_payload,
    encode_payload,
)

EMVCO_SAMPLE = (
    "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST"
    " TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***"
    "0708A60086670902ME91320016A0112233449988770708123456786304A13A"
)
DONGRI_UNIONPAY_TAG = (
    "0002010102121516ABCDEF123456789052045311530339254039995802JP5906DONGRI6005TOKYO62240104hoge0504fuga0704"
    "piyo63043FE6"
)


def test_crc_catalogue_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1


def test_emvco_sample_objects_in_order() -> None:
    assert decode_payload(EMVCO_SAMPLE) == (
        ("00", "01"),
        ("01", "12"),
        ("29", "0012D156000000000510A93FO3230Q"),
        ("31", "0012D15600000001030812345678"),
        ("52", "4111"),
        ("58", "CN"),
        ("59", "BEST TRANSPORT"),
        ("60", "BEIJING"),
        ("64", "0002ZH0104最佳运输0202北京"),
        ("54", "23.72"),
        ("53", "156"),
        ("55", "01"),
        ("62", "030412340603***0708A60086670902ME"),
        ("91", "0016A011223344998877070812345678"),
    )


def test_emvco_sample_reencodes_byte_for_byte() -> None:
    assert encode_payload(decode_payload(EMVCO_SAMPLE)) == EMVCO_SAMPLE
    assert EMVCO_SAMPLE.encode("utf-8") == encode_payload(decode_payload(EMVCO_SAMPLE)).encode("utf-8")


def test_emvco_sample_named_fields() -> None:
    qr = MerchantQr.from_payload(EMVCO_SAMPLE)
    assert qr.dynamic and qr.point_of_initiation == "12"
    assert [(a.tag, a.gui, a.fields) for a in qr.merchant_accounts] == [
        ("29", "D15600000000", (("05", "A93FO3230Q"),)),
        ("31", "D15600000001", (("03", "12345678"),)),
    ]
    assert (qr.mcc, qr.currency, qr.amount, qr.amount_fen) == ("4111", "156", "23.72", 2372)
    assert (qr.country, qr.name, qr.city) == ("CN", "BEST TRANSPORT", "BEIJING")
    # lengths count characters: "最佳运输" is 04 (12 bytes in UTF-8), "北京" is 02
    assert qr.language == (("00", "ZH"), ("01", "最佳运输"), ("02", "北京"))
    assert qr.additional == (("03", "1234"), ("06", "***"), ("07", "A6008667"), ("09", "ME"))
    assert qr.additional_field("terminal_label") == "A6008667"
    assert qr.additional_field("store_label") == "1234"
    assert qr.extra == (("55", "01"), ("91", "0016A011223344998877070812345678"))


def test_emvco_sample_rebuilt_from_named_fields_in_id_order() -> None:
    """Our encoder writes IDs in ascending order; the sample is not in that order, so rebuilding it from
    the named fields gives the same objects (and a CRC of its own) — and decodes back to the same fields."""
    qr = MerchantQr.from_payload(EMVCO_SAMPLE)
    rebuilt = qr.to_payload()
    assert sorted(decode_payload(rebuilt)) == sorted(decode_payload(EMVCO_SAMPLE))
    assert MerchantQr.from_payload(rebuilt) == qr


def test_dongri_unionpay_reserved_tag_encodes_byte_for_byte() -> None:
    qr = MerchantQr(
        merchant_accounts=(MerchantAccount("15", "ABCDEF1234567890"),),
        mcc="5311",
        currency="392",
        amount="999",
        country="JP",
        name="DONGRI",
        city="TOKYO",
        additional=(("01", "hoge"), ("05", "fuga"), ("07", "piyo")),
    )
    assert qr.to_payload() == DONGRI_UNIONPAY_TAG
    assert MerchantQr.from_payload(DONGRI_UNIONPAY_TAG) == qr


@pytest.mark.parametrize("vector", [EMVCO_SAMPLE, DONGRI_UNIONPAY_TAG])
def test_any_changed_character_breaks_the_crc_or_the_frame(vector: str) -> None:
    from posgate.errors import DecodeError

    for i in range(0, len(vector) - 4, 7):
        ch = vector[i]
        other = "7" if ch != "7" else "8"
        with pytest.raises(DecodeError):
            MerchantQr.from_payload(vector[:i] + other + vector[i + 1 :])
