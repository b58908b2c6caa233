"""The demo fixture as a validated document (`fixtures/demo.toml`) and its loading into an empty store.

It fills both sides: the acquirer's merchant, terminal (TMK sealed), issuer routes and zone keys, and the
issuer simulator's banks (PVK/CVK/IMK sealed), accounts and cards (PAN encrypted + hashed + masked, PIN as an
IBM 3624 offset). Test keys only: refused when `POSGATE_ENV=production`.
"""

from __future__ import annotations

import tomllib
from importlib import resources

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.errors import ConfigError
from posgate.security.at_rest import CardVault
from posgate.security.keys import kcv
from posgate.security.pin import pin_offset
from posgate.store.keys import put_key
from posgate.store.models import IssuerRoute, Merchant, SimAccount, SimBank, SimCard, Terminal

HEX32 = r"^[0-9A-Fa-f]{32}$"


class FixtureMerchant(BaseModel):
    mid: str = Field(pattern=r"^[0-9A-Za-z]{15}$")
    name: str
    mcc: str = Field(pattern=r"^\d{4}$")
    settlement: str = "T+1"
    mdr_debit_bp: int = Field(ge=0)
    mdr_debit_cap_fen: int = Field(ge=0)
    mdr_credit_bp: int = Field(ge=0)


class FixtureTerminal(BaseModel):
    tid: str = Field(pattern=r"^[0-9A-Za-z]{8}$")
    mid: str
    tmk: str = Field(pattern=HEX32)
    tmk_kcv: str = Field(pattern=r"^[0-9A-F]{8}$")
    nii: str = Field(pattern=r"^\d{4}$")


class FixtureBank(BaseModel):
    name: str
    bins: list[str]
    port: int
    kind: str = Field(pattern="^(debit|credit)$")
    zpk: str = Field(pattern=HEX32)
    zak: str = Field(pattern=HEX32)
    pvk: str = Field(pattern=HEX32)
    cvk: str = Field(pattern=HEX32)
    imk_ac: str | None = Field(default=None, pattern=HEX32)


class FixtureCard(BaseModel):
    pan: str = Field(pattern=r"^\d{13,19}$")
    bank: str
    profile: str
    pin: str = Field(pattern=r"^\d{4,12}$")
    expiry: str = Field(pattern=r"^\d{4}$")
    service_code: str = Field(pattern=r"^\d{3}$")
    psn: str | None = None
    balance_fen: int = Field(default=0, ge=0)
    limit_fen: int = Field(default=0, ge=0)
    state: str = Field(default="active", pattern="^(active|lost|stolen|blocked)$")


class DemoFixture(BaseModel):
    acquirer_id: str
    merchants: list[FixtureMerchant]
    terminals: list[FixtureTerminal]
    banks: list[FixtureBank]
    cards: list[FixtureCard]

    def bank(self, name: str) -> FixtureBank:
        for bank in self.banks:
            if bank.name == name:
                return bank
        raise ConfigError(f"demo fixture: card names unknown bank {name!r}")

    def card(self, pan_or_profile: str) -> FixtureCard:
        for card in self.cards:
            if pan_or_profile in (card.pan, card.profile):
                return card
        raise ConfigError(f"no demo card with PAN or profile {pan_or_profile!r}")


def read_demo_fixture() -> DemoFixture:
    """Parse and validate the packaged demo fixture."""
    text = resources.files("posgate.fixtures").joinpath("demo.toml").read_text(encoding="utf-8")
    return DemoFixture.model_validate(tomllib.loads(text))


def store_is_empty(session: Session) -> bool:
    return session.scalar(select(Terminal.id).limit(1)) is None and session.scalar(
        select(SimBank.id).limit(1)
    ) is None


def load_demo_fixture(session: Session, vault: CardVault, fixture: DemoFixture, env: str) -> None:
    """Insert the fixture into an empty store (caller commits). Refused in production."""
    if env == "production":
        raise ConfigError("the demo fixture holds test keys and is refused when POSGATE_ENV=production")
    merchant_ids: dict[str, int] = {}
    for m in fixture.merchants:
        row = Merchant(mid=m.mid, name=m.name, mcc=m.mcc, status="live")
        session.add(row)
        session.flush()
        merchant_ids[m.mid] = row.id
    for t in fixture.terminals:
        tmk = bytes.fromhex(t.tmk)
        if kcv(tmk) != t.tmk_kcv:
            raise ConfigError(f"demo fixture: terminal {t.tid} TMK does not match its KCV {t.tmk_kcv}")
        session.add(Terminal(tid=t.tid, merchant_id=merchant_ids[t.mid], nii=t.nii, status="live"))
        put_key(session, vault, "terminal", t.tid, "TMK", tmk, t.tmk_kcv)
    for b in fixture.banks:
        session.add(
            IssuerRoute(name=b.name, bins=",".join(b.bins), host="127.0.0.1", port=b.port, kind=b.kind)
        )
        session.add(SimBank(name=b.name, bins=",".join(b.bins), port=b.port, kind=b.kind))
        for purpose in ("zpk", "zak"):
            key = bytes.fromhex(getattr(b, purpose))
            put_key(session, vault, "issuer", b.name, purpose.upper(), key, kcv(key))
        for purpose in ("zpk", "zak", "pvk", "cvk", "imk_ac"):
            value = getattr(b, purpose)
            if value:
                key = bytes.fromhex(value)
                put_key(session, vault, "sim_bank", b.name, purpose.upper(), key, kcv(key))
    for c in fixture.cards:
        bank = fixture.bank(c.bank)
        account = SimAccount(
            bank=bank.name,
            kind=bank.kind,
            balance_fen=c.balance_fen if bank.kind == "debit" else 0,
            credit_limit_fen=c.limit_fen if bank.kind == "credit" else 0,
        )
        session.add(account)
        session.flush()
        protected = vault.protect_pan(c.pan)
        session.add(
            SimCard(
                bank=bank.name,
                pan_ciphertext=protected.ciphertext,
                pan_hash=protected.pan_hash,
                pan_masked=protected.masked,
                expiry=c.expiry,
                service_code=c.service_code,
                psn=c.psn,
                state=c.state,
                pin_offset=pin_offset(bytes.fromhex(bank.pvk), c.pin, c.pan),
                account_id=account.id,
            )
        )
