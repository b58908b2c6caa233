"""EMV chip cryptograms (the PBOC/UnionPay IC layout of demo-fixture.md), computed by pyemv.

ICC master key = EMV option A from the issuer's IMK-AC, the PAN and the PSN; session key = EMV common session
key with R = ATC(2) ‖ six zero bytes; ARQC = ISO 9797-1 algorithm 3 with padding method 2 over the
transaction data (`arqc_data` builds it from field 55's tags); ARPC = method 1 with the 2-byte ARC (the ASCII
bytes of field 39). pyemv has no verify functions, so `verify_arqc` regenerates and compares in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from pyemv import ac, kd

from posgate.errors import SecurityError
from posgate.security.keys import check_key

#: Field 55 tags whose values, concatenated in this order, form the ARQC input (then CVR = 9F10[3:7]).
ARQC_DATA_TAGS = ("9F02", "9F03", "9F1A", "95", "5F2A", "9A", "9C", "9F37", "82", "9F36")


def icc_master_key(imk_ac: bytes, pan: str, psn: str) -> bytes:
    """The card's AC master key, derived from the issuer master key (EMV option A).

    >>> imk = bytes.fromhex("9E15204313F7318ACB79B90BD986AD29")
    >>> icc_master_key(imk, "6228880000000016", "01").hex().upper()
    '4989137A45E30D10E5A1A7209EECD51A'
    """
    check_key(imk_ac, "IMK-AC", (16,))
    if not (pan.isascii() and pan.isdigit() and 13 <= len(pan) <= 19):
        raise SecurityError("ICC master key: PAN must be 13 to 19 digits")
    if not (psn.isascii() and psn.isdigit() and len(psn) == 2):
        raise SecurityError("ICC master key: PSN must be 2 digits")
    return kd.derive_icc_mk_a(bytes(imk_ac), pan, psn)


def session_key(icc_mk: bytes, atc: bytes) -> bytes:
    """The AC session key for one transaction (EMV common session key, R = ATC ‖ 00 00 00 00 00 00).

    >>> mk = bytes.fromhex("4989137A45E30D10E5A1A7209EECD51A")
    >>> session_key(mk, bytes.fromhex("0001")).hex().upper()
    '20A4D579AD85588CB9C4E3912A25B615'
    """
    check_key(icc_mk, "ICC master key", (16,))
    if len(atc) != 2:
        raise SecurityError(f"ATC must be 2 bytes, got {len(atc)}")
    return kd.derive_common_sk(bytes(icc_mk), bytes(atc) + bytes(6))


def arqc_data(tags: Mapping[str, bytes]) -> bytes:
    """The ARQC input from decoded field 55: values of `ARQC_DATA_TAGS` in order, then the CVR (9F10[3:7]).

    Raises `SecurityError` naming the first missing tag.
    """
    missing = [tag for tag in (*ARQC_DATA_TAGS, "9F10") if tag not in tags]
    if missing:
        raise SecurityError(f"field 55: tag {missing[0]} missing for the ARQC")
    iad = tags["9F10"]
    if len(iad) < 7:
        raise SecurityError(f"field 55: tag 9F10 is {len(iad)} bytes, at least 7 needed for the CVR")
    return b"".join(bytes(tags[tag]) for tag in ARQC_DATA_TAGS) + bytes(iad[3:7])


def generate_arqc(sk: bytes, data: bytes) -> bytes:
    """The 8-byte application cryptogram over `data` (ISO 9797-1 alg. 3, padding method 2).

    >>> sk = bytes.fromhex("20A4D579AD85588CB9C4E3912A25B615")
    >>> data = bytes.fromhex("00000000880000000000000001560000000000015626112600112233447C00000103A00000")
    >>> generate_arqc(sk, data).hex().upper()
    'A40C02DEFB441C8A'
    """
    check_key(sk, "AC session key", (16,))
    return ac.generate_ac(bytes(sk), bytes(data), padding_type=ac.PaddingType.EMV)


def verify_arqc(sk: bytes, data: bytes, arqc: bytes) -> bool:
    """True when `arqc` is the cryptogram of `data` under `sk`; compared in constant time."""
    return hmac.compare_digest(generate_arqc(sk, data), bytes(arqc))


def generate_arpc(sk: bytes, arqc: bytes, arc: bytes) -> bytes:
    """The 8-byte ARPC (method 1) answering `arqc` with the 2-byte authorization response code `arc`.

    >>> sk = bytes.fromhex("20A4D579AD85588CB9C4E3912A25B615")
    >>> generate_arpc(sk, bytes.fromhex("A40C02DEFB441C8A"), b"00").hex().upper()
    'D9468E8D054FEA29'
    """
    check_key(sk, "AC session key", (16,))
    if len(arqc) != 8:
        raise SecurityError(f"ARQC must be 8 bytes, got {len(arqc)}")
    if len(arc) != 2:
        raise SecurityError(f"ARC must be 2 bytes, got {len(arc)}")
    return ac.generate_arpc_1(bytes(sk), bytes(arqc), bytes(arc))
