"""A merchant's wallet sub-merchant ids (issue 12), allocated when onboarding approves it: the id under which
each wallet provider knows the merchant beneath the acquirer's service-provider account — WeChat Pay's
`sub_mchid` (10 digits), Alipay's `smid` (16 digits, `2088…`), and for UnionPay QR the merchant's own MID
(an acquirer's merchant is a UnionPay merchant under its MID). Kept in `wallet_sub_merchants`, one per
(merchant, provider), unique per provider.

Said plainly: the ids are allocated here, in the providers' shapes; registering the merchant with a real
provider (WeChat's and Alipay's sub-merchant application, 进件) is a provider API call this module does not
make, and the simulators take every order under the acquirer's own account.
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.merchants.identifiers import insert_unique
from posgate.store.models_wallet import WalletSubMerchant

PROVIDERS = ("wechat", "alipay", "unionpay")


def candidate(provider: str, mid: str) -> str:
    """A fresh id in the provider's shape.

    >>> len(candidate("wechat", "M")), candidate("alipay", "M")[:4], candidate("unionpay", "898440153110001")
    (10, '2088', '898440153110001')
    """
    if provider == "wechat":
        return "16" + "".join(str(secrets.randbelow(10)) for _ in range(8))
    if provider == "alipay":
        return "2088" + "".join(str(secrets.randbelow(10)) for _ in range(12))
    return mid


def sub_merchants(session: Session, mid: str) -> dict[str, str]:
    """provider → the merchant's sub-merchant id there (only those allocated)."""
    w = WalletSubMerchant.__table__.c
    return dict(
        session.execute(select(w.provider, w.sub_merchant_id).where(w.mid == mid).order_by(w.provider)).all()
    )


def allocate(session: Session, mid: str, now: dt.datetime) -> dict[str, str]:
    """Give the merchant an id at each provider it has none at yet (each insert in a savepoint: a collision
    with another merchant's id draws again); returns every id it has."""
    have = sub_merchants(session, mid)
    for provider in PROVIDERS:
        if provider in have:
            continue

        def insert(sub_id: str, provider: str = provider) -> WalletSubMerchant:
            row = WalletSubMerchant(mid=mid, provider=provider, sub_merchant_id=sub_id, created_at=now)
            session.add(row)
            return row

        row = insert_unique(session, lambda provider=provider: candidate(provider, mid), insert)
        have[provider] = row.sub_merchant_id
    return dict(sorted(have.items()))
