"""RecordRequest (the duplicate check, by database constraint), ReserveRefund (a refund's amount taken
from its original, and given back unless the refund ends approved) and RecordOutcome (the answer, stored)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from posgate.host.context import Kind, TxnContext
from posgate.host.ports import Cards, Forwarder, Outcome, ReleaseRefund, Stans, Transactions
from posgate.host.steps.base import Step
from posgate.host.steps.respond import ComposeResponse, replayed_answer, stored_answer
from posgate.iso8583.reasons import Reason
from posgate.txnset import IssuerEffect, TxnState, row_of

if TYPE_CHECKING:
    from posgate.store.acquirer import Existing

log = logging.getLogger("posgate.host")


def row_values(ctx: TxnContext, cards: Cards, state: TxnState) -> dict[str, object]:
    """The transaction row of this request (the PAN sealed by the card vault)."""
    request = ctx.request
    values: dict[str, object] = {
        "tid": ctx.tid,
        "mid": request.get("42", ctx.terminal.mid if ctx.terminal else ""),
        "batch_no": ctx.batch_no,
        "stan": ctx.stan,
        "mti": ctx.mti,
        "processing_code": request.get("3", "000000"),
        "business_date": ctx.business_date,
        "kind": ctx.kind.value,
        "amount_fen": int(request.get("4", "0")),
        "currency": request.get("49", "156"),
        "entry_mode": request.get("22"),
        "state": state.value,
        "created_at": ctx.received_at.replace(tzinfo=None),
        "transmission_dt": ctx.received_at.strftime("%m%d%H%M%S"),
        "condition_code": request.get("25"),
        "card_seq": request.get("23"),
        "fallback": request.get("22", "")[:2] == "80",
    }
    if ctx.route is not None:
        values["issuer_name"] = ctx.route.issuer_name
        values["card_kind"] = ctx.route.card_kind
    if ctx.card is not None:
        protected = cards.protect_pan(ctx.card.pan)
        values |= {
            "pan_ciphertext": protected.ciphertext,
            "pan_hash": protected.pan_hash,
            "pan_masked": protected.masked,
        }
    return values


class RecordRequest(Step):
    """Needs: a verified terminal (and card/route when the kind has them). Provides: ctx.txn_id, ctx.rrn,
    ctx.network_stan, ctx.transmission_dt — or ctx.replay when this is a duplicate of an answered request.
    Declines: 94 when the same request is still being processed. The unique key (TID, batch, STAN, MTI,
    processing code, business date) is a database constraint, so any host node sees the same answer.
    A routed request gets its network STAN here, from its issuer link's counter, and stored with the row
    before anything is sent: a reversal or an advice can always name it."""

    def __init__(self, transactions: Transactions, stans: Stans, cards: Cards) -> None:
        self.transactions, self.stans, self.cards = transactions, stans, cards

    async def commit(self, ctx: TxnContext) -> None:
        values = row_values(ctx, self.cards, TxnState.PENDING)
        if ctx.route is not None:
            values["network_stan"] = await self.stans.next(ctx.route.issuer_name)
        recorded = await self.transactions.record(values)
        if recorded is None:
            existing = await self.transactions.duplicate_of(
                ctx.tid, ctx.batch_no, ctx.stan, ctx.mti, str(values["processing_code"]), ctx.business_date
            )
            self._replay(ctx, existing)
            return
        ctx.txn_id, ctx.rrn, ctx.network_stan = recorded.id, recorded.rrn, recorded.network_stan or None
        ctx.transmission_dt = str(values["transmission_dt"])

    @staticmethod
    def _replay(ctx: TxnContext, existing: Existing | None) -> None:
        if existing is None or existing.response is None:
            ctx.result.decline(Reason.DUPLICATE)
            return
        ctx.replay = replayed_answer(ctx.kind, existing.response, ctx.request)


class ReserveRefund(Step):
    """Needs: ctx.original (a sale or completion), field 4. Takes the refund's amount from what is left of
    the original (a conditional UPDATE: concurrent refunds cannot together exceed it) and registers its
    compensation, `ReleaseRefund`: applied with the outcome, in the same unit of work, when the refund does
    not end approved. Declines: 64 nothing left for this amount."""

    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions

    async def commit(self, ctx: TxnContext) -> None:
        assert ctx.original is not None
        original_id, amount = ctx.original.id, int(ctx.request["4"])
        ctx.refund_reserved = await self.transactions.reserve_refund(original_id, amount, ctx.txn_id)
        if not ctx.refund_reserved:
            ctx.result.decline(Reason.AMOUNT_DIFFERS)
            return
        ctx.compensations.append(ReleaseRefund(original_id, amount))


STATE_BY_CODE = {"00": TxnState.APPROVED, "98": TxnState.TIMED_OUT}
# the issuer's answer after which it holds money for the request (a reply whose MAC did not verify may say
# anything: `ctx.issuer_reply_unverified`)
ISSUER_APPROVED = "00"


def issuer_may_hold_money(ctx: TxnContext) -> bool:
    """Whether the issuer may have approved this request — debited, held, credited or released money for
    it: it was sent and either approved (`00`, or a reply whose MAC failed) or never answered."""
    if row_of(ctx.kind).issuer_effect is IssuerEffect.NONE:  # it asked the issuer to move no money
        return False
    if ctx.issuer_unanswered or ctx.issuer_reply_unverified:
        return True
    return ctx.issuer_reply is not None and ctx.issuer_reply.get("39") == ISSUER_APPROVED


def original_effect(kind: Kind) -> tuple[TxnState, TxnState] | None:
    """What an approved request of `kind` does to its original (from state, to state)."""
    rule = row_of(kind).original
    return rule.effect if rule is not None else None


class RecordOutcome(Step):
    """Needs: ctx.response (built by ComposeResponse), ctx.txn_id. Stores the outcome and the answer (which a
    duplicate gets again; without the echoed fields that carry card data). Requests declined before
    RecordRequest (97, A0, 30, 14, 15 …) are not transactions: the log line with the trace is their
    record, and the terminal may retry them.

    The outcome is written only while the row is still pending. When another request settled it meanwhile
    — the terminal's own reversal, or a host node that took it for a transaction in doubt after the host
    handling it died (and queued its reversal) — an approval becomes `98` for the terminal: it is never told
    "approved" for a transaction that is being reversed. Effects on the original (voided, completed …) happen
    only with an outcome that was written; the steps' compensations (a refund's reservation) only when the
    transaction does not end approved and no recovery did them already.

    A request the host declines although the issuer may have approved it (`issuer_may_hold_money`) — the
    reversal the step queued failed (the store failed after a reply whose MAC did not verify, or after a
    time-out), or a step after AskIssuer failed and so did its compensation — is written `reversed` and its
    0420 queued in the same unit of work, so the issuer always releases what it holds for a host decline.
    If this unit of work fails too, the row stays `pending` for the in-doubt recovery, which does the same."""

    def __init__(
        self,
        transactions: Transactions,
        compose: ComposeResponse,
        forwarder: Forwarder,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.transactions, self.compose, self.forwarder, self.clock = transactions, compose, forwarder, clock

    async def commit(self, ctx: TxnContext) -> None:
        if ctx.replay is not None or ctx.txn_id is None:
            return
        response = ctx.response
        assert response is not None
        code = ctx.result.code
        approved = ctx.result.approved
        undo_at_issuer = not approved and issuer_may_hold_money(ctx)
        original_id = ctx.original.id if ctx.original is not None else ctx.reversed_original_id
        outcome = Outcome(
            state=TxnState.REVERSED if undo_at_issuer else STATE_BY_CODE.get(code, TxnState.DECLINED),
            response_code=code,
            auth_code=ctx.auth_code,
            response=stored_answer(ctx.kind, response),
            trace=ctx.trace_text(),
            stand_in=ctx.stand_in,
            original_id=original_id,
            original_effect=original_effect(ctx.kind) if approved and ctx.original is not None else None,
            compensations=tuple(ctx.compensations),
            reverse_at_issuer=("98" if ctx.issuer_unanswered else "96") if undo_at_issuer else None,
            now=self.clock().replace(tzinfo=None),
        )
        finished = await self.transactions.finish(ctx.txn_id, outcome)
        if undo_at_issuer and finished.applied:
            log.warning(
                "%s RRN %s declined (%s) after the issuer may have approved it: 0420 queued",
                ctx.kind.value,
                ctx.rrn,
                code,
            )
            self.forwarder.kick()
        if approved and finished.state != TxnState.APPROVED:
            log.warning(
                "%s RRN %s was %s while the host waited for the issuer: answering 98",
                ctx.kind.value,
                ctx.rrn,
                "resolved as in doubt" if finished.recovered else finished.state,
            )
            ctx.result.decline(Reason.ISSUER_TIMEOUT)
            ctx.auth_code = None
            await self.compose.prepare(ctx)
            assert ctx.response is not None
            await self.transactions.store_answer(ctx.txn_id, stored_answer(ctx.kind, ctx.response))
