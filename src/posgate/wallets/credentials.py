"""Provider credentials of the acquirer (one set per provider and merchant account): ids, the acquirer's
private keys, shared secrets, and the provider's public keys — sealed in the `keys` table like every other
key (`store.keys.put_key` / `get_keys`, owner kind `wallet`, owner ref `<provider>:<merchant id>`).

Secrets never show: `repr()` and `str()` name the ids and key fingerprints only, and nothing here logs.
Stored purposes: `private_key` (PKCS#8 PEM), `apiv3_key` (WeChat Pay), `config` (JSON: ids and the
provider's public keys, PEM — not secret, sealed all the same so that one table holds a provider account).
The KCV of an RSA key is `rsakeys.fingerprint` (SHA-256 of its public key), of an API v3 key the first
6 hex digits of AES-256(key, zero block) (an AES KCV), of the config SHA-256 of its bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy.orm import Session

from posgate.store.keys import KeySealer, get_keys, put_key
from posgate.wallets import rsakeys

OWNER_KIND = "wallet"


def aes_kcv(key: bytes) -> str:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return (encryptor.update(bytes(16)) + encryptor.finalize())[:3].hex().upper()


@dataclass(frozen=True, repr=False)
class Credentials:
    """One provider account. `merchant_id` is WeChat's mchid, Alipay's app_id, UnionPay's merId;
    `app_id` WeChat's appid (Alipay: = merchant_id); `key_serial` the serial of our key's certificate
    (WeChat serial_no, UnionPay certId; Alipay: none); `provider_keys` the provider's verification keys by
    serial (WeChat: `PUB_KEY_ID_…`, UnionPay: certId, Alipay: one key under "")."""

    provider: str
    merchant_id: str
    app_id: str
    key_serial: str
    private_key: rsakeys.PrivateKey = field(compare=False)
    provider_keys: dict[str, rsakeys.PublicKey] = field(compare=False)
    apiv3_key: bytes | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        provider = ",".join(
            f"{serial or '-'}:{rsakeys.fingerprint(k)}" for serial, k in self.provider_keys.items()
        )
        return (
            f"Credentials(provider={self.provider!r}, merchant_id={self.merchant_id!r},"
            f" app_id={self.app_id!r},"
            f" key_serial={self.key_serial!r}, private_key=<{rsakeys.fingerprint(self.private_key)}>,"
            f" apiv3_key={'<set>' if self.apiv3_key else None}, provider_keys=[{provider}])"
        )

    __str__ = __repr__

    @property
    def owner_ref(self) -> str:
        return f"{self.provider}:{self.merchant_id}"

    def config_json(self) -> bytes:
        return json.dumps(
            {
                "provider": self.provider,
                "merchant_id": self.merchant_id,
                "app_id": self.app_id,
                "key_serial": self.key_serial,
                "provider_keys": {s: rsakeys.public_pem(k).decode() for s, k in self.provider_keys.items()},
            },
            sort_keys=True,
        ).encode()


def seal(session: Session, sealer: KeySealer, credentials: Credentials, actor: str = "console") -> None:
    """Store (or replace) one provider account's credentials, sealed; the caller commits."""
    ref = credentials.owner_ref
    pem = rsakeys.private_pem(credentials.private_key)
    put_key(
        session,
        sealer,
        OWNER_KIND,
        ref,
        "private_key",
        pem,
        rsakeys.fingerprint(credentials.private_key),
        actor,
    )
    config = credentials.config_json()
    put_key(
        session,
        sealer,
        OWNER_KIND,
        ref,
        "config",
        config,
        hashlib.sha256(config).hexdigest()[:6].upper(),
        actor,
    )
    if credentials.apiv3_key is not None:
        key = credentials.apiv3_key
        put_key(session, sealer, OWNER_KIND, ref, "apiv3_key", key, aes_kcv(key), actor)


def open_credentials(
    session: Session, sealer: KeySealer, provider: str, merchant_id: str, actor: str | None = None
) -> Credentials | None:
    """One provider account's credentials, opened (audited when `actor` is given); None if not stored."""
    keys = get_keys(
        session, sealer, OWNER_KIND, f"{provider}:{merchant_id}", actor=actor, use="wallet provider"
    )
    if "config" not in keys or "private_key" not in keys:
        return None
    config = json.loads(keys["config"])
    return Credentials(
        provider=config["provider"],
        merchant_id=config["merchant_id"],
        app_id=config["app_id"],
        key_serial=config["key_serial"],
        private_key=rsakeys.load_private(keys["private_key"]),
        provider_keys={s: rsakeys.load_public(pem) for s, pem in config["provider_keys"].items()},
        apiv3_key=keys.get("apiv3_key"),
    )


def simulator_registration(credentials: Credentials, notify_url: str | None = None) -> dict[str, str]:
    """What a merchant gives a provider simulator's portal (`POST /sim/merchants`): its ids, its public key
    and, for WeChat Pay, the API v3 key (a secret shared with the provider — send it to a loopback simulator
    only)."""
    registration = {
        "merchant_id": credentials.merchant_id,
        "app_id": credentials.app_id,
        "public_key_pem": rsakeys.public_pem(credentials.private_key.public_key()).decode(),
        "key_serial": credentials.key_serial,
    }
    if notify_url:
        registration["notify_url"] = notify_url
    if credentials.apiv3_key is not None:
        registration["apiv3_key"] = credentials.apiv3_key.decode("ascii")
    return registration
