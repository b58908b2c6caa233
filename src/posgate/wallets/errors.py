"""The wallet errors: one branch of `PosgateError` for everything a wallet provider or a QR payload can do
wrong. Their text names the tag, the field or the provider, never a key; a payment code appears only
through `codes.mask_code` (its prefix and last four digits)."""

from __future__ import annotations

from posgate.errors import DecodeError, EncodeError, PosgateError, SecurityError


class WalletError(PosgateError):
    """Root of the wallet errors."""


class QrDecodeError(DecodeError):
    """An EMVCo payload could not be read: `field` is the tag (e.g. "54" or "62.05"), `pos` the character
    position in the payload where the problem is."""


class QrEncodeError(EncodeError):
    """An EMVCo payload cannot be built from these values: `field` is the tag."""


class UnknownCodePrefix(WalletError):
    """A scanned payment code belongs to no configured provider (its prefix is named)."""

    def __init__(self, prefix: str, detail: str = "") -> None:
        self.prefix = prefix
        super().__init__(f"unknown payment code prefix {prefix!r}{': ' + detail if detail else ''}")


class ProviderError(WalletError):
    """A provider refused, or answered something we cannot use. `code` is the provider's own code,
    `reason` its provider-neutral meaning (`adapters.base.REASONS`)."""

    def __init__(
        self,
        provider: str,
        message: str,
        code: str | None = None,
        status: int | None = None,
        reason: str = "system",
    ) -> None:
        self.provider = provider
        self.code = code
        self.status = status
        self.reason = reason
        super().__init__(f"{provider}: {message}")


class ProviderTimeout(WalletError):
    """The provider did not answer in time: the outcome is unknown until a query resolves it."""

    def __init__(self, provider: str, operation: str, timeout_s: float) -> None:
        self.provider = provider
        super().__init__(f"{provider}: no answer to {operation} within {timeout_s:g} s")


class ProviderUnavailable(WalletError):
    """The provider could not be reached at all (connection refused, reset before an answer)."""

    def __init__(self, provider: str, operation: str, reason: str) -> None:
        self.provider = provider
        super().__init__(f"{provider}: {operation} failed: {reason}")


class SignatureInvalid(SecurityError):
    """A signature (request, answer or notification) did not verify, or its timestamp is out of window."""


class NotificationRejected(SecurityError):
    """A notification is not to be trusted or not to be applied: forged, undecryptable, stale or replayed.
    `reason` is one of `signature`, `decrypt`, `stale`, `replay`, `format`."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)
