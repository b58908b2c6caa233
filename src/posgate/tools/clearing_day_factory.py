"""Days of transactions written straight into a store, as the host and the issuer simulator would leave
them — for tests, examples and demos of clearing, payouts and reconciliation (never used by the host).

`DayBuilder` inserts `Transaction` rows with the host's state rules (a void makes its sale `voided`, a
completion its pre-authorization `completed`, a refund counts in the sale's `refunded_fen`, a reversal
makes its original `reversed` and gives a voided sale back) and, when asked, the issuer simulator's
matching `SimAuthorization` rows (same RRN and network STAN; effects debit, credit, hold, complete,
release; a reversal marks the issuer's row reversed). Times are given in acquirer local time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from posgate.store.models import IssuerRoute, Merchant, Transaction
from posgate.store.models_simulator import SimAuthorization
from posgate.store.runtime import Store
from posgate.txnset import ROWS, TxnState

_TXN = Transaction.__table__
_AUTH = SimAuthorization.__table__

#: kind → (MTI, processing code, condition code, issuer effect)
SHAPES: dict[str, tuple[str, str, str, str]] = {
    row.kind: (row.mti, row.processing_code or "", row.condition_code or "", row.issuer_effect.value)
    for row in ROWS
    if row.card
}
#: a pre-authorization's host state → its hold's state at the issuer
_ISSUER_HOLD_STATE = {TxnState.COMPLETED: TxnState.COMPLETED, TxnState.CANCELLED: TxnState.VOIDED}
#: what a reversal of each kind gives its own original back
_RESTORES = {row.kind: row.reversal_restores for row in ROWS if row.reversal_restores is not None}


@dataclass(frozen=True)
class Card:
    issuer: str
    kind: str  # debit | credit
    pan_masked: str


#: A small world for examples: two merchants (one allowed D0), a debit bank and a credit bank.
EXAMPLE_MID = "898440153110001"
EXAMPLE_MID_2 = "898440153110002"
DEBIT_CARD = Card("Bank D", "debit", "621000******0001")
CREDIT_CARD = Card("Bank C", "credit", "625000******0002")


def provision_example(builder: DayBuilder) -> None:
    """The example world's merchants and issuer routes."""
    builder.merchant(EXAMPLE_MID, "Demo Supermarket", 5000, 2000, 6000, d0_allowed=True)
    builder.merchant(EXAMPLE_MID_2, "Corner Cafe", 3800, None, 5500)
    builder.route(DEBIT_CARD.issuer, "621000", "debit")
    builder.route(CREDIT_CARD.issuer, "625000", "credit")


class DayBuilder:
    """Writes transactions into `session` (the caller commits), or into a store one unit of work at a
    time (`with builder.writing(store): …`); STANs keep counting across units of work."""

    def __init__(
        self,
        session: Session | None = None,
        timezone: str = "Asia/Shanghai",
        acquirer_id: str = "49990000",
        issuer_books: bool = False,
        batch_no: str = "000001",
    ) -> None:
        self.session = session  # type: ignore[assignment]
        self.tz = ZoneInfo(timezone)
        self.acquirer_id = acquirer_id
        self.issuer_books = issuer_books
        self.batch_no = batch_no
        self._stan: dict[str, int] = {}

    @contextmanager
    def writing(self, store: Store) -> Iterator[DayBuilder]:
        """One unit of work on `store` (committed when the block ends)."""
        with store.sessions() as session, session.begin():
            self.session = session
            yield self

    # ---- reference data

    def merchant(
        self,
        mid: str,
        name: str = "",
        debit_ppm: int = 5000,
        debit_cap_fen: int | None = 2000,
        credit_ppm: int = 6000,
        d0_allowed: bool = False,
    ) -> None:
        self.session.add(
            Merchant(
                mid=mid,
                name=name or f"Merchant {mid[-4:]}",
                mcc="5311",
                status="live",
                mdr_debit_ppm=debit_ppm,
                mdr_debit_cap_fen=debit_cap_fen,
                mdr_credit_ppm=credit_ppm,
                d0_allowed=d0_allowed,
            )
        )
        self.session.flush()

    def route(self, name: str, bins: str, kind: str) -> None:
        self.session.add(IssuerRoute(name=name, bins=bins, port=1, kind=kind))
        self.session.flush()

    # ---- transactions

    def utc(self, local: dt.datetime) -> dt.datetime:
        return local.replace(tzinfo=self.tz).astimezone(dt.UTC).replace(tzinfo=None)

    def _next_stan(self, tid: str) -> str:
        self._stan[tid] = self._stan.get(tid, 0) + 1
        return f"{self._stan[tid]:06d}"

    def _insert(
        self,
        kind: str,
        at: dt.datetime,
        mid: str,
        tid: str,
        card: Card,
        amount_fen: int,
        state: str,
        original_id: int | None = None,
        stan: str | None = None,
        mti: str | None = None,
        processing_code: str | None = None,
    ) -> int:
        shape = SHAPES.get(kind, ("0400", "000000", "00", "none"))
        created = self.utc(at)
        txn_id = self.session.execute(
            insert(_TXN)
            .values(
                tid=tid,
                mid=mid,
                batch_no=self.batch_no,
                stan=stan or self._next_stan(tid),
                mti=mti or shape[0],
                processing_code=processing_code or shape[1],
                condition_code=shape[2],
                business_date=at.date(),
                kind=kind,
                amount_fen=amount_fen,
                currency="156",
                issuer_name=card.issuer,
                card_kind=card.kind,
                pan_masked=card.pan_masked,
                state=state,
                response_code="00" if state != TxnState.DECLINED else "51",
                original_id=original_id,
                transmission_dt=created.strftime("%m%d%H%M%S"),
                created_at=created,
                updated_at=created,
            )
            .returning(_TXN.c.id)
        ).scalar_one()
        rrn, network_stan = f"{txn_id:012d}", f"{txn_id % 1_000_000:06d}"
        auth_code = f"{txn_id % 1_000_000:06d}" if state != TxnState.DECLINED else None
        self.session.execute(
            update(_TXN)
            .where(_TXN.c.id == txn_id)
            .values(rrn=rrn, network_stan=network_stan, auth_code=auth_code)
        )
        if self.issuer_books and kind in SHAPES and state != TxnState.PENDING:
            approved = state != TxnState.DECLINED and state != TxnState.TIMED_OUT
            self.session.execute(
                insert(_AUTH).values(
                    bank=card.issuer,
                    acquirer_id=f"{int(self.acquirer_id):011d}",
                    stan=network_stan,
                    transmission_dt=created.strftime("%m%d%H%M%S"),
                    mti=shape[0],
                    processing_code=shape[1],
                    rrn=rrn,
                    amount_fen=amount_fen,
                    effect=shape[3] if approved else "none",
                    state=TxnState.APPROVED if approved else TxnState.DECLINED,
                    response_code="00" if approved else "51",
                    auth_code=auth_code,
                    created_at=created,
                )
            )
        return txn_id

    def _row(self, txn_id: int):  # type: ignore[no-untyped-def]
        return self.session.execute(select(_TXN).where(_TXN.c.id == txn_id)).one()

    def _card_of(self, row) -> Card:  # type: ignore[no-untyped-def]
        return Card(row.issuer_name, row.card_kind, row.pan_masked)

    def _move(self, txn_id: int, from_state: TxnState, to_state: TxnState, at: dt.datetime) -> bool:
        """The host's state change of a pre-authorization, sale or completion — and, for a
        pre-authorization, the issuer's (its hold completed or released, or given back by a reversal)."""
        moved = self.session.execute(
            update(_TXN)
            .where(_TXN.c.id == txn_id, _TXN.c.state == from_state)
            .values(state=to_state, updated_at=self.utc(at))
        ).rowcount
        if moved and self.issuer_books:
            if to_state in _ISSUER_HOLD_STATE:
                self._issuer_state(txn_id, TxnState.APPROVED, _ISSUER_HOLD_STATE[to_state])
            elif to_state == TxnState.APPROVED and from_state in _ISSUER_HOLD_STATE:
                self._issuer_state(txn_id, _ISSUER_HOLD_STATE[from_state], TxnState.APPROVED)
        return bool(moved)

    def _issuer_state(self, txn_id: int, from_state: TxnState, to_state: TxnState) -> None:
        self.session.execute(
            update(_AUTH)
            .where(_AUTH.c.rrn == f"{txn_id:012d}", _AUTH.c.state == from_state)
            .values(state=to_state)
        )

    def sale(
        self,
        at: dt.datetime,
        amount_fen: int,
        mid: str,
        card: Card,
        tid: str = "10000001",
        state: TxnState = TxnState.APPROVED,
    ) -> int:
        return self._insert("sale", at, mid, tid, card, amount_fen, state)

    def preauth(
        self,
        at: dt.datetime,
        amount_fen: int,
        mid: str,
        card: Card,
        tid: str = "10000001",
        state: TxnState = TxnState.APPROVED,
    ) -> int:
        return self._insert("preauth", at, mid, tid, card, amount_fen, state)

    def _follow(
        self, kind: str, at: dt.datetime, original_id: int, amount_fen: int | None, state: str
    ) -> int:
        original = self._row(original_id)
        return self._insert(
            kind,
            at,
            original.mid,
            original.tid,
            self._card_of(original),
            original.amount_fen if amount_fen is None else amount_fen,
            state,
            original_id=original_id,
        )

    def void(self, at: dt.datetime, sale_id: int, state: TxnState = TxnState.APPROVED) -> int:
        txn_id = self._follow("void", at, sale_id, None, state)
        if state == TxnState.APPROVED:
            self._move(sale_id, TxnState.APPROVED, TxnState.VOIDED, at)
        return txn_id

    def refund(
        self, at: dt.datetime, sale_id: int, amount_fen: int, state: TxnState = TxnState.APPROVED
    ) -> int:
        txn_id = self._follow("refund", at, sale_id, amount_fen, state)
        if state == TxnState.APPROVED:
            self.session.execute(
                update(_TXN).where(_TXN.c.id == sale_id).values(refunded_fen=_TXN.c.refunded_fen + amount_fen)
            )
        return txn_id

    def completion(
        self, at: dt.datetime, preauth_id: int, amount_fen: int, state: TxnState = TxnState.APPROVED
    ) -> int:
        txn_id = self._follow("completion", at, preauth_id, amount_fen, state)
        if state == TxnState.APPROVED:
            self._move(preauth_id, TxnState.APPROVED, TxnState.COMPLETED, at)
        return txn_id

    def completion_void(
        self, at: dt.datetime, completion_id: int, state: TxnState = TxnState.APPROVED
    ) -> int:
        txn_id = self._follow("completion_void", at, completion_id, None, state)
        if state == TxnState.APPROVED:
            self._move(completion_id, TxnState.APPROVED, TxnState.VOIDED, at)
        return txn_id

    def preauth_void(self, at: dt.datetime, preauth_id: int, state: TxnState = TxnState.APPROVED) -> int:
        txn_id = self._follow("preauth_void", at, preauth_id, None, state)
        if state == TxnState.APPROVED:
            self._move(preauth_id, TxnState.APPROVED, TxnState.CANCELLED, at)
        return txn_id

    def reversal(self, at: dt.datetime, original_id: int, linked: bool = True) -> int:
        """The terminal's 0400 for `original_id`: same STAN and processing code; the original becomes
        `reversed` (if it was approved) and what it had changed is given back (a void's sale, …)."""
        original = self._row(original_id)
        txn_id = self._insert(
            "reversal",
            at,
            original.mid,
            original.tid,
            self._card_of(original),
            original.amount_fen,
            TxnState.APPROVED,
            original_id=original_id if linked else None,
            stan=original.stan,
            mti="0400",
            processing_code=original.processing_code,
        )
        if self._move(original_id, TxnState.APPROVED, TxnState.REVERSED, at):
            if self.issuer_books:
                self._issuer_state(original_id, TxnState.APPROVED, TxnState.REVERSED)
            if original.kind in _RESTORES and original.original_id is not None:
                self._move(original.original_id, _RESTORES[original.kind], TxnState.APPROVED, at)
        return txn_id
