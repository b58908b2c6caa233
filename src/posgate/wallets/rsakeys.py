"""RSA keys of the wallet protocols (`cryptography`): PEM in and out, SHA256withRSA (PKCS#1 v1.5) sign and
verify in base64 as all three providers use it, and a fingerprint to name a key without showing it.

>>> key = generate()
>>> sig = sign(key, b"abc")
>>> verify(key.public_key(), b"abc", sig), verify(key.public_key(), b"abd", sig)
(True, False)
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PrivateKey = rsa.RSAPrivateKey
PublicKey = rsa.RSAPublicKey


def generate(bits: int = 2048) -> PrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _pem(data: bytes | str, kind: str) -> bytes:
    """Accept PEM, or the bare base64 body the providers' portals hand out (as the SDKs do)."""
    text = data.decode("ascii") if isinstance(data, bytes) else data
    text = text.strip()
    if not text.startswith("-----BEGIN"):
        body = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
        text = f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"
    return text.encode("ascii")


def load_private(data: bytes | str) -> PrivateKey:
    key = serialization.load_pem_private_key(_pem(data, "PRIVATE KEY"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def load_public(data: bytes | str) -> PublicKey:
    key = serialization.load_pem_public_key(_pem(data, "PUBLIC KEY"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def fingerprint(key: PublicKey | PrivateKey) -> str:
    """First 6 hex digits of SHA-256 over the public key (DER): names a key in audits, reveals nothing."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:6].upper()


def sign(key: PrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def verify(key: PublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
