"""Card checks of the issuer simulator: track 2 CVV, PIN block against the stored IBM 3624 offset, EMV ARQC,
and the ARPC answer (field 55 tag 91). Pure functions of keys and request data, built on `posgate.security`.

Each check returns a `rules.Check` verdict that the rules weigh; none raises for a cardholder's or a
terminal's mistake. A key the bank does not have (no IMK-AC for a chip request) is `Check.MALFORMED`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from posgate.cards.tlv import encode_tlv
from posgate.cards.track2 import Track2, track2_cvv
from posgate.errors import DecodeError, EncodeError, SecurityError
from posgate.issuer.rules import Check
from posgate.security.cvv import verify_cvv
from posgate.security.emv import arqc_data, generate_arpc, icc_master_key, session_key, verify_arqc
from posgate.security.pin import verify_pin_block

ARQC_TAG = "9F26"
ATC_TAG = "9F36"
ARPC_TAG = "91"


def check_track_cvv(track: Track2 | None, cvk: bytes | None) -> Check:
    """The CVV in the demo track 2 layout against the one computed with the bank's CVK."""
    if track is None:
        return Check.ABSENT
    if cvk is None:
        return Check.MALFORMED
    try:
        cvv = track2_cvv(track)
        ok = verify_cvv(cvk, track.pan, track.expiry, track.service_code, cvv)
    except (DecodeError, SecurityError):
        return Check.FAILED
    return Check.PASSED if ok else Check.FAILED


def check_pin(block: bytes | None, pan: str, zpk: bytes | None, pvk: bytes | None, pin_offset: str) -> Check:
    """A format 0 PIN block under the ZPK against the card's stored PIN offset.

    MALFORMED when the block does not decrypt to format 0 for this PAN (a key or PAN mismatch upstream).
    """
    if block is None:
        return Check.ABSENT
    if zpk is None or pvk is None:
        return Check.MALFORMED
    try:
        ok = verify_pin_block(block, pan, zpk, pvk, pin_offset)
    except SecurityError:  # PinBlockFormatError included
        return Check.MALFORMED
    return Check.PASSED if ok else Check.FAILED


@dataclass(frozen=True)
class ChipCheck:
    """The ARQC verdict and what the ARPC needs: the session key and the card's ARQC."""

    check: Check
    session_key: bytes | None = field(default=None, repr=False)
    arqc: bytes | None = field(default=None, repr=False)


def check_arqc(icc: Mapping[str, bytes] | None, pan: str, psn: str | None, imk_ac: bytes | None) -> ChipCheck:
    """Verify field 55's ARQC (demo-fixture.md: ICC key option A, common session key from the ATC, data =
    9F02 ‖ 9F03 ‖ 9F1A ‖ 95 ‖ 5F2A ‖ 9A ‖ 9C ‖ 9F37 ‖ 82 ‖ 9F36 ‖ 9F10[3:7])."""
    if icc is None:
        return ChipCheck(Check.ABSENT)
    arqc = icc.get(ARQC_TAG)
    atc = icc.get(ATC_TAG)
    if imk_ac is None or psn is None or arqc is None or len(arqc) != 8 or atc is None or len(atc) != 2:
        return ChipCheck(Check.MALFORMED)
    try:
        sk = session_key(icc_master_key(imk_ac, pan, psn), atc)
    except SecurityError:
        return ChipCheck(Check.MALFORMED)
    try:
        ok = verify_arqc(sk, arqc_data(icc), arqc)
    except SecurityError:
        return ChipCheck(Check.MALFORMED, sk, arqc)
    return ChipCheck(Check.PASSED if ok else Check.FAILED, sk, arqc)


def arpc_field(chip: ChipCheck, response_code: str) -> str | None:
    """Field 55 of the response: tag 91 = ARPC (method 1, ARC = the ASCII bytes of field 39) ‖ ARC, as hex.

    None when there is nothing to answer (no chip data, or no session key could be derived).
    """
    if chip.session_key is None or chip.arqc is None:
        return None
    arc = response_code.encode("ascii")
    try:
        arpc = generate_arpc(chip.session_key, chip.arqc, arc)
        return encode_tlv({ARPC_TAG: arpc + arc}).hex().upper()
    except (SecurityError, EncodeError):
        return None
