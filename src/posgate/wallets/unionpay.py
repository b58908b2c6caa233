"""UnionPay QR (acquirer API of the UnionPay open platform, ACP 5.1.0) signatures, as published in
UnionPay's SDKs and mirrored by open-source clients: the pure core shared by the adapter and the simulator.

Messages are forms (`application/x-www-form-urlencoded`, UTF-8) both ways. With `signMethod=01` (RSA):
the signed content is every field but `signature`, sorted by name (ordinal), as `k=v` joined by `&`
(empty values included, unencoded); its SHA-256 is written as 64 lower-case hex digits, and *that text* is
signed with SHA256withRSA; `signature` is the base64 of the result. The signer's key is named by `certId`
(the serial of its certificate).

Simplification, said plainly: UnionPay's answers carry the signing certificate (`signPubKeyCert`), which the
merchant checks against UnionPay's root and intermediate certificates before using it. The simulator sends
no certificate chain; the adapter is configured with UnionPay's signing public key and pins it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from posgate.wallets import rsakeys
from posgate.wallets.errors import SignatureInvalid

VERSION = "5.1.0"
SIGN_METHOD_RSA = "01"
TIME_FORMAT = "%Y%m%d%H%M%S"
# (txnType, txnSubType) of the QR flows
CONSUME_BY_CODE = ("01", "06")  # customer-presented: the merchant submits the payment code (qrNo)
APPLY_QR = ("01", "07")  # merchant-presented: ask for a QR code (qrCode) the customer scans
QUERY = ("00", "00")
CANCEL = ("31", "00")  # void a payment of today (消费撤销)
REFUND = ("04", "00")
PROCESSING_CODES = frozenset({"03", "04", "05"})  # the outcome is not known yet: query


def sign_content(fields: Mapping[str, str]) -> str:
    """
    >>> sign_content({"version": "5.1.0", "signature": "x", "accessType": "0"})
    'accessType=0&version=5.1.0'
    """
    return "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "signature")


def digest(fields: Mapping[str, str]) -> bytes:
    return hashlib.sha256(sign_content(fields).encode("utf-8")).hexdigest().encode("ascii")


def sign_fields(key: rsakeys.PrivateKey, cert_id: str, fields: Mapping[str, str]) -> dict[str, str]:
    signed = {**fields, "signMethod": SIGN_METHOD_RSA, "certId": cert_id}
    signed.pop("signature", None)
    return {**signed, "signature": rsakeys.sign(key, digest(signed))}


def verify_fields(keys: Mapping[str, rsakeys.PublicKey], fields: Mapping[str, str]) -> None:
    """`SignatureInvalid` unless `fields` carry a good RSA signature by the key named in `certId`."""
    if fields.get("signMethod") != SIGN_METHOD_RSA:
        raise SignatureInvalid(f"signMethod {fields.get('signMethod', '')[:8]!r} is not 01 (RSA)")
    key = keys.get(fields.get("certId", ""))
    if key is None:
        raise SignatureInvalid(f"certId {fields.get('certId', '')[:40]!r} is no known key")
    if not rsakeys.verify(key, digest(fields), fields.get("signature", "")):
        raise SignatureInvalid("signature does not verify")
