"""The EMVCo payload of a wallet order: the provider's code URL in a merchant account template (26–51)
whose globally unique identifier names the provider, plus the merchant, amount and order references.

| provider | template | GUI (sub-ID 00) | sub-ID 01 |
|---|---|---|---|
| wechat | 26 | `com.tencent.wechatpay` | the `code_url` (`weixin://wxpay/bizpayurl?pr=…`) |
| alipay | 27 | `com.alipay` | the `qr_code` (`https://qr.alipay.com/…`) |
| unionpay | 28 | `A000000333` (UnionPay's registered application provider id) | the `qrCode` |

Additional data (62): 01 bill number = the order id, 05 reference label = the provider's order number,
07 terminal label = the TID.

>>> payload = order_payload("wechat", "weixin://wxpay/bizpayurl?pr=abc", 1250, "小杨生煎", "上海", "5812",
...                         "O1", "12345678")
>>> provider_url(payload)
('wechat', 'weixin://wxpay/bizpayurl?pr=abc')
"""

from __future__ import annotations

from posgate.wallets.emvqr import DYNAMIC, MerchantAccount, MerchantQr, amount_text
from posgate.wallets.errors import QrDecodeError

TEMPLATES = {
    "wechat": ("26", "com.tencent.wechatpay"),
    "alipay": ("27", "com.alipay"),
    "unionpay": ("28", "A000000333"),
}
_BY_GUI = {gui: provider for provider, (_, gui) in TEMPLATES.items()}


def order_payload(
    provider: str,
    code_url: str,
    amount_fen: int,
    merchant_name: str,
    city: str,
    mcc: str,
    order_id: str,
    tid: str,
    reference: str | None = None,
) -> str:
    tag, gui = TEMPLATES[provider]
    additional = [("01", order_id[:25])]
    if reference:
        additional.append(("05", reference[:25]))
    additional.append(("07", tid[:25]))
    qr = MerchantQr(
        merchant_accounts=(MerchantAccount(tag, gui, (("01", code_url),)),),
        mcc=mcc,
        name=merchant_name[:25],
        city=city[:15],
        amount=amount_text(amount_fen),
        point_of_initiation=DYNAMIC,
        additional=tuple(additional),
    )
    return qr.to_payload()


def provider_url(payload: str) -> tuple[str, str]:
    """(provider, code URL) of the first wallet template in a payload; `QrDecodeError` if there is none."""
    qr = MerchantQr.from_payload(payload)
    for account in qr.merchant_accounts:
        provider = _BY_GUI.get(account.gui)
        url = account.field("01")
        if provider and url:
            return provider, url
    raise QrDecodeError(
        "tags 26–51: no WeChat Pay, Alipay or UnionPay template in this payload", field="26", pos=0
    )
