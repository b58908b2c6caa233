"""Personal data at rest: an applicant's ID number and settlement card are sealed (AES-GCM under the master
key's sealing sub-key, bound to a label) and looked up by a keyed hash; only masked forms are shown."""

from __future__ import annotations

from posgate.store.keys import KeySealer
from posgate.store.models_onboarding import CARD_LABEL, ID_NUMBER_LABEL

__all__ = ["CARD_LABEL", "ID_NUMBER_LABEL", "Vault", "lookup_hash", "seal", "unseal"]


class Vault(KeySealer):
    def pan_hash(self, pan: str) -> str: ...


def seal(vault: KeySealer, value: str, label: str) -> bytes:
    return vault.seal_key(value.encode("ascii"), label)


def unseal(vault: KeySealer, sealed: bytes, label: str) -> str:
    return vault.open_key(sealed, label).decode("ascii")


def lookup_hash(vault: Vault, value: str, label: str) -> str:
    """Keyed hash for look-ups; the label keeps ID numbers and card numbers in separate domains."""
    return vault.pan_hash(f"{label}:{value}")
