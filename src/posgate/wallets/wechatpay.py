"""WeChat Pay API v3 signatures and notification encryption, as publicly documented (pay.weixin.qq.com,
"签名生成 / 签名验证 / 回调报文解密"), the pure core shared by the adapter and the simulator.

- A merchant request carries `Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",
  signature="…",timestamp="…",serial_no="…"`: SHA256withRSA with the merchant's API key over
  `METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n` (URL = path and query string; BODY empty for a GET).
- Every answer and notification carries `Wechatpay-Timestamp`, `Wechatpay-Nonce`, `Wechatpay-Serial` (the
  platform key's serial) and `Wechatpay-Signature`: SHA256withRSA with the platform key over
  `TIMESTAMP\\nNONCE\\nBODY\\n`; plus `Wechatpay-Signature-Type: WECHATPAY2-SHA256-RSA2048`.
- A notification's `resource` is `AEAD_AES_256_GCM` under the merchant's 32-character API v3 key: key = the
  key's bytes, nonce = the 12-character `nonce`, associated data = `associated_data`, `ciphertext` = base64 of
  ciphertext ‖ 16-byte tag.

Nothing here reads the clock: `now` (Unix seconds) is a parameter; a signed message older or newer than
`window_s` (300 s, WeChat's own advice) is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from posgate.wallets import rsakeys
from posgate.wallets.errors import NotificationRejected, SignatureInvalid

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
ALGORITHM = "AEAD_AES_256_GCM"
WINDOW_S = 300
_AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')


def nonce_str(n: int = 32) -> str:
    """A random upper-case hex nonce of `n` characters."""
    return secrets.token_hex(n // 2).upper()


def request_message(method: str, url: str, timestamp: str, nonce: str, body: str) -> bytes:
    return f"{method}\n{url}\n{timestamp}\n{nonce}\n{body}\n".encode()


def answer_message(timestamp: str, nonce: str, body: str) -> bytes:
    return f"{timestamp}\n{nonce}\n{body}\n".encode()


@dataclass(frozen=True)
class Authorization:
    mchid: str
    nonce_str: str
    signature: str = ""
    timestamp: str = ""
    serial_no: str = ""

    def header(self) -> str:
        return (
            f'{SCHEMA} mchid="{self.mchid}",nonce_str="{self.nonce_str}",signature="{self.signature}",'
            f'timestamp="{self.timestamp}",serial_no="{self.serial_no}"'
        )


def authorization(
    key: rsakeys.PrivateKey,
    mchid: str,
    serial_no: str,
    method: str,
    url: str,
    body: str,
    timestamp: int,
    nonce: str | None = None,
) -> str:
    """The `Authorization` header value of a merchant request."""
    nonce = nonce or nonce_str()
    signature = rsakeys.sign(key, request_message(method, url, str(timestamp), nonce, body))
    return Authorization(mchid, nonce, signature, str(timestamp), serial_no).header()


def parse_authorization(header: str) -> Authorization:
    """The parts of an `Authorization` header; `SignatureInvalid` naming what is wrong."""
    schema, _, params = header.partition(" ")
    if schema != SCHEMA:
        raise SignatureInvalid(f"Authorization: schema {schema[:40]!r} is not {SCHEMA}")
    values = dict(_AUTH_PARAM.findall(params))
    missing = [k for k in ("mchid", "nonce_str", "signature", "timestamp", "serial_no") if not values.get(k)]
    if missing:
        raise SignatureInvalid(f"Authorization: missing {', '.join(missing)}")
    if not values["timestamp"].isdigit():
        raise SignatureInvalid("Authorization: timestamp is not Unix seconds")
    return Authorization(
        values["mchid"], values["nonce_str"], values["signature"], values["timestamp"], values["serial_no"]
    )


def check_window(timestamp: str, now: int, window_s: int = WINDOW_S) -> None:
    if not timestamp.isdigit() or abs(now - int(timestamp)) > window_s:
        raise SignatureInvalid(f"timestamp {timestamp[:20]!r} is more than {window_s} s from now")


def verify_request(
    key: rsakeys.PublicKey, header: str, method: str, url: str, body: str, now: int, window_s: int = WINDOW_S
) -> Authorization:
    """Verify a merchant request (the simulator's side). Returns the parsed header."""
    auth = parse_authorization(header)
    check_window(auth.timestamp, now, window_s)
    if not rsakeys.verify(
        key, request_message(method, url, auth.timestamp, auth.nonce_str, body), auth.signature
    ):
        raise SignatureInvalid("Authorization: the signature does not verify")
    return auth


def signed_headers(key: rsakeys.PrivateKey, serial: str, body: str, timestamp: int) -> dict[str, str]:
    """The platform's signature headers for an answer or a notification."""
    nonce = nonce_str()
    return {
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature": rsakeys.sign(key, answer_message(str(timestamp), nonce, body)),
        "Wechatpay-Signature-Type": SCHEMA,
    }


def verify_answer(
    platform_keys: Mapping[str, rsakeys.PublicKey],
    headers: Mapping[str, str],
    body: str,
    now: int,
    window_s: int = WINDOW_S,
) -> None:
    """Verify the platform's signature on an answer or notification (`headers` looked up
    case-insensitively by the caller's mapping, e.g. httpx/starlette headers)."""
    serial = headers.get("Wechatpay-Serial") or ""
    timestamp = headers.get("Wechatpay-Timestamp") or ""
    nonce = headers.get("Wechatpay-Nonce") or ""
    signature = headers.get("Wechatpay-Signature") or ""
    kind = headers.get("Wechatpay-Signature-Type") or SCHEMA
    if kind != SCHEMA:
        raise SignatureInvalid(f"Wechatpay-Signature-Type {kind[:40]!r} is not {SCHEMA}")
    if not (serial and timestamp and nonce and signature):
        raise SignatureInvalid("Wechatpay-Signature/-Timestamp/-Nonce/-Serial: missing")
    key = platform_keys.get(serial)
    if key is None:
        raise SignatureInvalid(f"Wechatpay-Serial {serial[:64]!r} is no known platform key")
    check_window(timestamp, now, window_s)
    if not rsakeys.verify(key, answer_message(timestamp, nonce, body), signature):
        raise SignatureInvalid("Wechatpay-Signature does not verify")


def _aes_key(apiv3_key: bytes) -> AESGCM:
    if len(apiv3_key) != 32:
        raise ValueError("the API v3 key is 32 bytes")
    return AESGCM(apiv3_key)


def encrypt_resource(
    apiv3_key: bytes, plaintext: str, associated_data: str, original_type: str, nonce: str | None = None
) -> dict[str, str]:
    """A notification `resource` object."""
    nonce = nonce or secrets.token_hex(6)
    sealed = _aes_key(apiv3_key).encrypt(nonce.encode(), plaintext.encode(), associated_data.encode())
    return {
        "original_type": original_type,
        "algorithm": ALGORITHM,
        "ciphertext": base64.b64encode(sealed).decode("ascii"),
        "associated_data": associated_data,
        "nonce": nonce,
    }


def decrypt_resource(apiv3_key: bytes, resource: Mapping[str, object]) -> str:
    """The clear text of a notification `resource`; `NotificationRejected("decrypt")` when it is not ours."""
    if resource.get("algorithm") != ALGORITHM:
        raise NotificationRejected("format", f"resource algorithm {str(resource.get('algorithm'))[:40]!r}")
    nonce, ciphertext = resource.get("nonce"), resource.get("ciphertext")
    associated = resource.get("associated_data") or ""
    if not isinstance(nonce, str) or not isinstance(ciphertext, str) or not isinstance(associated, str):
        raise NotificationRejected("format", "resource: nonce, ciphertext and associated_data are strings")
    try:
        data = base64.b64decode(ciphertext, validate=True)
        return _aes_key(apiv3_key).decrypt(nonce.encode(), data, associated.encode()).decode("utf-8")
    except (InvalidTag, binascii.Error, ValueError, UnicodeDecodeError):
        raise NotificationRejected("decrypt", "the notification resource does not decrypt") from None


def read_notification(
    platform_keys: Mapping[str, rsakeys.PublicKey],
    apiv3_key: bytes,
    headers: Mapping[str, str],
    body: str,
    now: int,
    window_s: int = WINDOW_S,
) -> tuple[dict[str, object], dict[str, object]]:
    """Verify and decrypt a notification: (envelope, decrypted resource). Raises `NotificationRejected`
    (`signature`, `stale`, `decrypt`, `format`)."""
    try:
        verify_answer(platform_keys, headers, body, now, window_s)
    except SignatureInvalid as exc:
        reason = "stale" if "from now" in str(exc) else "signature"
        raise NotificationRejected(reason, f"notification rejected: {exc}") from None
    try:
        envelope = json.loads(body)
    except ValueError:
        raise NotificationRejected("format", "notification body is not JSON") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("resource"), dict):
        raise NotificationRejected("format", "notification has no resource object")
    try:
        resource = json.loads(decrypt_resource(apiv3_key, envelope["resource"]))
    except ValueError:
        raise NotificationRejected("format", "the decrypted resource is not JSON") from None
    if not isinstance(resource, dict):
        raise NotificationRejected("format", "the decrypted resource is not an object")
    return envelope, resource
