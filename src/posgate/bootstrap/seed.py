"""Loading the demo fixture into an empty store.

It fills both sides: the acquirer's merchant, terminal (TMK sealed), issuer routes and zone keys, and the
issuer simulator's banks (PVK/CVK/IMK sealed), accounts and cards (PAN encrypted + hashed + masked, PIN as an
IBM 3624 offset). Test keys only: refused when `POSGATE_ENV=production`.
"""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from posgate.errors import ConfigError
from posgate.fixtures.document import DemoFixture, FixtureCard
from posgate.merchants.wallet_ids import allocate as allocate_wallet_ids
from posgate.security.at_rest import CardVault
from posgate.security.keys import kcv
from posgate.security.pin import pin_offset
from posgate.store.base import utcnow
from posgate.store.keys import put_key
from posgate.store.models import IssuerRoute, Merchant, Terminal
from posgate.store.models_simulator import SimAccount, SimBank, SimCard


def store_is_empty(session: Session) -> bool:
    return (
        session.scalar(select(Terminal.id).limit(1)) is None
        and session.scalar(select(SimBank.id).limit(1)) is None
    )


def load_demo_fixture(session: Session, vault: CardVault, fixture: DemoFixture, env: str) -> None:
    """Insert the fixture into an empty store (caller commits). Refused in production."""
    if env == "production":
        raise ConfigError("the demo fixture holds test keys and is refused when POSGATE_ENV=production")
    merchant_ids: dict[str, int] = {}
    for m in fixture.merchants:
        row = Merchant(
            mid=m.mid,
            name=m.name,
            mcc=m.mcc,
            status="live",
            mdr_debit_ppm=m.mdr_debit_ppm,
            mdr_debit_cap_fen=m.mdr_debit_cap_fen,
            mdr_credit_ppm=m.mdr_credit_ppm,
            settlement_cycle=m.settlement,
        )
        session.add(row)
        session.flush()
        merchant_ids[m.mid] = row.id
        allocate_wallet_ids(session, m.mid, row.created_at or utcnow())
    for t in fixture.terminals:
        tmk = bytes.fromhex(t.tmk)
        if kcv(tmk) != t.tmk_kcv:
            raise ConfigError(f"demo fixture: terminal {t.tid} TMK does not match its KCV {t.tmk_kcv}")
        # the fixture's terminals are field terminals of the public vectors: the legacy CUP ECB MAC
        session.add(
            Terminal(
                tid=t.tid, merchant_id=merchant_ids[t.mid], nii=t.nii, status="live", mac_algorithm="cup_ecb"
            )
        )
        put_key(session, vault, "terminal", t.tid, "TMK", tmk, t.tmk_kcv, actor="fixture")
    for b in fixture.banks:
        session.add(
            IssuerRoute(name=b.name, bins=",".join(b.bins), host="127.0.0.1", port=b.port, kind=b.kind)
        )
        session.add(SimBank(name=b.name, bins=",".join(b.bins), port=b.port, kind=b.kind))
        for purpose in ("zpk", "zak"):
            key = bytes.fromhex(getattr(b, purpose))
            put_key(session, vault, "issuer", b.name, purpose.upper(), key, kcv(key), actor="fixture")
        for purpose in ("zpk", "zak", "pvk", "cvk", "imk_ac"):
            value = getattr(b, purpose)
            if value:
                key = bytes.fromhex(value)
                put_key(session, vault, "sim_bank", b.name, purpose.upper(), key, kcv(key), actor="fixture")
    add_cards(session, vault, fixture, fixture.cards)


def add_cards(session: Session, vault: CardVault, fixture: DemoFixture, cards: list[FixtureCard]) -> None:
    """Issue cards at the simulator's banks: an account each, PAN protected, PIN kept as its offset.

    Two multi-row inserts (accounts, then cards with the accounts' ids in parameter order), so the bench's
    tens of thousands of cards take seconds, not a flush each."""
    if not cards:
        return
    banks = [fixture.bank(c.bank) for c in cards]
    account_rows = [
        {
            "bank": bank.name,
            "kind": bank.kind,
            "balance_fen": c.balance_fen if bank.kind == "debit" else 0,
            "credit_limit_fen": c.limit_fen if bank.kind == "credit" else 0,
        }
        for c, bank in zip(cards, banks, strict=True)
    ]
    account_ids = session.scalars(
        insert(SimAccount).returning(SimAccount.id, sort_by_parameter_order=True), account_rows
    ).all()
    card_rows = []
    for c, bank, account_id in zip(cards, banks, account_ids, strict=True):
        protected = vault.protect_pan(c.pan)
        card_rows.append(
            {
                "bank": bank.name,
                "pan_ciphertext": protected.ciphertext,
                "pan_hash": protected.pan_hash,
                "pan_masked": protected.masked,
                "expiry": c.expiry,
                "service_code": c.service_code,
                "psn": c.psn,
                "state": c.state,
                "pin_offset": pin_offset(bytes.fromhex(bank.pvk), c.pin, c.pan),
                "account_id": account_id,
            }
        )
    session.execute(insert(SimCard), card_rows)
