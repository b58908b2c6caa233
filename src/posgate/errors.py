"""The one exception tree of posgate.

Protocol errors carry the field number, the byte position and the response code the host should answer
with; `str()` of any error never contains a clear PAN, track data, a PIN block or a key (callers pass
masked values, and `mask_card_data` scrubs anything that slipped through).
"""

from __future__ import annotations

import re

_CARD_DIGITS = re.compile(r"(?<![0-9A-Fa-f])(\d{6})(\d{3,9})(\d{4})(?=[D=]?)(?![0-9])")
_TRACK2 = re.compile(r"(\d{6})\d{3,9}(\d{4})[D=][0-9A-F]+", re.IGNORECASE)
# a run of 20 digits or more: too long for a PAN, unless it is one padded with zeros (an `n 20` field,
# BCD's filler) — zeros, 13–19 digits, zeros
_LONG_RUN = re.compile(r"(?<![0-9A-Fa-f])\d{20,}(?![0-9])")
_ZERO_PADDED = re.compile(r"(0*)([1-9]\d{11,17}[1-9])(0*)")


def _mask_padded_pan(run: re.Match[str]) -> str:
    padded = _ZERO_PADDED.fullmatch(run.group())
    if padded is None:
        return run.group()
    left, pan, right = padded.groups()
    return f"{left}{pan[:6]}{'*' * (len(pan) - 10)}{pan[-4:]}{right}"


def mask_card_data(text: str) -> str:
    """Mask anything in `text` that looks like a PAN (13–19 digits, or padded with zeros to 20 digits or
    more) or a track 2.

    >>> mask_card_data("card 6229990000000012 declined")
    'card 622999******0012 declined'
    >>> mask_card_data("6229990000000012D3012101136169110300")
    '622999******0012D***'
    >>> mask_card_data("field 2 00006229990000000012")
    'field 2 0000622999******0012'
    """
    text = _TRACK2.sub(lambda m: f"{m.group(1)}******{m.group(2)}D***", text)
    text = _CARD_DIGITS.sub(lambda m: f"{m.group(1)}{'*' * len(m.group(2))}{m.group(3)}", text)
    return _LONG_RUN.sub(_mask_padded_pan, text)  # runs _CARD_DIGITS cannot match (it ends at 19 digits)


class PosgateError(Exception):
    """Root of every error posgate raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(mask_card_data(message))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ConfigError(PosgateError):
    """A configuration or data document is invalid; raised at start-up, names the setting."""


class ProtocolError(PosgateError):
    """A peer sent something we cannot accept. `response_code` is what to answer, if we can answer."""

    response_code = "30"

    def __init__(self, message: str, field: int | str | None = None, pos: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.pos = pos


class FramingError(ProtocolError):
    """The TCP frame itself is wrong (length, TPDU, header)."""


class DecodeError(ProtocolError):
    """A field could not be decoded or failed content validation."""


class EncodeError(ProtocolError):
    """A message we were asked to build is invalid (a bug on our side, or bad input to a CLI)."""

    response_code = "96"


class SecurityError(PosgateError):
    """A cryptographic check failed or a key is unusable."""


class IssuerUnavailable(PosgateError):
    """The issuer link is down: answer 91 at once (or stand in)."""


class IssuerReplyUnverified(PosgateError):
    """The issuer answered, but the reply's MAC did not verify under the ZAK: nothing in it is trusted
    (AskIssuer answers 96 and reverses the request; the store-and-forward queue counts it delivered)."""


class IssuerTimeout(PosgateError):
    """The issuer did not answer within the time-out: answer 98 and queue a reversal."""
