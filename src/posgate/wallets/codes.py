"""Customer-presented payment codes (付款码): their shape per provider, routing a scanned code to its provider
by prefix, fresh codes for the simulators, and masking for logs and errors.

| provider | digits | prefixes |
|---|---|---|
| `wechat` (WeChat Pay) | 18 | 10–15 |
| `alipay` (Alipay) | 16–24 | 25–30 |
| `unionpay` (UnionPay QR, bank apps) | 19 | 62 |

A payment code is a short-lived bearer token (about a minute): it is never logged whole
(`mask_code`: the two-digit prefix and the last four digits).

>>> route_code("134567890123456789").provider
'wechat'
>>> route_code("6212345678901234567").provider
'unionpay'
>>> route_code("991234567890123456")
Traceback (most recent call last):
...
posgate.wallets.errors.UnknownCodePrefix: unknown payment code prefix '99'
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from posgate.wallets.errors import UnknownCodePrefix

PROVIDERS = ("wechat", "alipay", "unionpay")


@dataclass(frozen=True)
class CodeShape:
    provider: str
    prefixes: tuple[str, ...]
    lengths: tuple[int, ...]

    def matches_prefix(self, code: str) -> bool:
        return code.startswith(self.prefixes)


SHAPES: tuple[CodeShape, ...] = (
    CodeShape("wechat", tuple(str(n) for n in range(10, 16)), (18,)),
    CodeShape("alipay", tuple(str(n) for n in range(25, 31)), tuple(range(16, 25))),
    CodeShape("unionpay", ("62",), (19,)),
)
_BY_PROVIDER = {shape.provider: shape for shape in SHAPES}


def shape_of(provider: str) -> CodeShape:
    try:
        return _BY_PROVIDER[provider]
    except KeyError:
        raise ValueError(f"unknown wallet provider {provider!r} (one of {', '.join(PROVIDERS)})") from None


def mask_code(code: str) -> str:
    """A payment code for a log line: prefix and last four digits.

    >>> mask_code("134567890123456789")
    '13************6789'
    """
    if len(code) <= 6:
        return "*" * len(code)
    return code[:2] + "*" * (len(code) - 6) + code[-4:]


def route_code(code: str, enabled: Iterable[str] = PROVIDERS) -> CodeShape:
    """The provider a scanned code belongs to. Raises `UnknownCodePrefix` (naming the prefix) when no
    enabled provider issues codes with that prefix, or when the code has the wrong length or characters."""
    code = code.strip()
    prefix = code[:2]
    if not code.isdigit() or not code.isascii():
        raise UnknownCodePrefix(prefix, "a payment code is digits only")
    allowed = set(enabled)
    for shape in SHAPES:
        if shape.provider in allowed and shape.matches_prefix(code):
            if len(code) not in shape.lengths:
                first, last = shape.lengths[0], shape.lengths[-1]
                want = f"{first}–{last}" if first != last else str(first)
                raise UnknownCodePrefix(prefix, f"{shape.provider} codes have {want} digits, not {len(code)}")
            return shape
    raise UnknownCodePrefix(prefix)


def new_code(provider: str, rand: secrets.SystemRandom | None = None) -> str:
    """A fresh random code of the provider's shape (the simulators issue these to their customers)."""
    shape = shape_of(provider)
    rng = rand or secrets.SystemRandom()
    prefix = rng.choice(shape.prefixes)
    length = rng.choice(shape.lengths) if shape.provider != "alipay" else 18  # Alipay's usual length
    return prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix)))
