"""Alipay open-API signatures (RSA2), as publicly documented (opendocs.alipay.com, "自行实现签名 / 验签"), the
pure core shared by the adapter and the simulator.

- A request is a set of parameters (`app_id`, `method`, `charset`, `sign_type=RSA2`, `timestamp`
  `yyyy-MM-dd HH:mm:ss` Beijing time, `version=1.0`, `biz_content` JSON, optional `notify_url`), sent to the
  gateway as a form or a query string. The signed content is every non-empty parameter but `sign`, sorted by
  name, as `k=v` joined by `&`, unencoded; the signature is SHA256withRSA with the app's private key, base64.
- An answer is JSON `{"<method with _>_response": {...}, "sign": "..."}`: the platform key signs the exact
  text of the response object as sent (so a verifier must cut it from the raw answer, not re-serialise).
- An asynchronous notification is a form POST; its signed content leaves out `sign` *and* `sign_type`.
  The receiver answers the body `success`, or is called again later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from posgate.wallets import rsakeys
from posgate.wallets.errors import SignatureInvalid

SIGN_TYPE = "RSA2"
GATEWAY_PATH = "/gateway.do"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def sign_content(params: Mapping[str, str], exclude: tuple[str, ...] = ("sign",)) -> str:
    """The text that is signed.

    >>> sign_content({"method": "alipay.trade.query", "app_id": "2021", "sign": "x", "empty": ""})
    'app_id=2021&method=alipay.trade.query'
    """
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in exclude and params[k] != "")


def sign_params(key: rsakeys.PrivateKey, params: Mapping[str, str]) -> dict[str, str]:
    """The parameters with `sign` added (`sign_type` must already be among them)."""
    return {**params, "sign": rsakeys.sign(key, sign_content(params).encode("utf-8"))}


def verify_params(key: rsakeys.PublicKey, params: Mapping[str, str], notification: bool = False) -> None:
    """Verify a signed request (the simulator) or, with `notification`, a notification (the merchant):
    `SignatureInvalid` if the signature is missing, of another type or wrong."""
    signature = params.get("sign") or ""
    if not signature:
        raise SignatureInvalid("sign: missing")
    if params.get("sign_type", SIGN_TYPE) != SIGN_TYPE:
        raise SignatureInvalid(f"sign_type {params.get('sign_type', '')[:20]!r} is not {SIGN_TYPE}")
    exclude = ("sign", "sign_type") if notification else ("sign",)
    if not rsakeys.verify(key, sign_content(params, exclude).encode("utf-8"), signature):
        raise SignatureInvalid("sign does not verify")


def response_name(method: str) -> str:
    """`alipay.trade.query` → `alipay_trade_query_response`."""
    return method.replace(".", "_") + "_response"


def signed_answer(key: rsakeys.PrivateKey, method: str, response: Mapping[str, object]) -> str:
    """The answer text: the response object serialised once, signed as those exact characters."""
    inner = json.dumps(response, ensure_ascii=False, separators=(",", ":"))
    signature = rsakeys.sign(key, inner.encode("utf-8"))
    return f'{{"{response_name(method)}":{inner},"sign":"{signature}"}}'


def read_answer(key: rsakeys.PublicKey, method: str, raw: str) -> dict[str, object]:
    """Verify an answer and return its response object. The signed text is cut from `raw` with a JSON
    decoder (a brace inside a string value does not end it)."""
    name = response_name(method)
    try:
        outer = json.loads(raw)
    except ValueError:
        raise SignatureInvalid("answer is not JSON") from None
    if not isinstance(outer, dict):
        raise SignatureInvalid("answer is not a JSON object")
    if name not in outer:
        error = outer.get("error_response")
        if isinstance(error, dict):  # gateway-level errors may come unsigned
            return error
        raise SignatureInvalid(f"answer has no {name}")
    signature = outer.get("sign")
    if not isinstance(signature, str) or not signature:
        raise SignatureInvalid(f"{name}: unsigned answer")
    marker = raw.find(f'"{name}"')
    start = raw.find("{", raw.find(":", marker + len(name) + 2))
    response, end = json.JSONDecoder().raw_decode(raw, start)
    if not rsakeys.verify(key, raw[start:end].encode("utf-8"), signature):
        raise SignatureInvalid(f"{name}: sign does not verify")
    if not isinstance(response, dict):
        raise SignatureInvalid(f"{name} is not an object")
    return response


def yuan_text(fen: int) -> str:
    """Alipay amounts are yuan with two decimals.

    >>> yuan_text(2372), yuan_text(5)
    ('23.72', '0.05')
    """
    whole, cents = divmod(fen, 100)
    return f"{whole}.{cents:02d}"


def fen_of(text: str) -> int:
    """`"23.72"` → 2372, refusing anything that is not digits with at most two decimals.

    >>> fen_of("23.72"), fen_of("10"), fen_of("0.5")
    (2372, 1000, 50)
    """
    whole, _, cents = str(text).partition(".")
    if not whole.isdigit() or (cents and not cents.isdigit()) or len(cents) > 2:
        raise ValueError(f"amount {str(text)[:20]!r} is not yuan with two decimals")
    return int(whole) * 100 + int(cents.ljust(2, "0"))
