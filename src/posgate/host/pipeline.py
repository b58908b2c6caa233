"""The authorization path, readable top to bottom: the ordered steps for each kind of POS message.

"Where is response code 51 decided?" — AskIssuer maps the issuer's answer; "where is 97?" — IdentifyTerminal
and RequireSignIn; "where is 30?" — CheckFields (every field's content, before any MAC is trusted);
"where are 58, 59, 61, 65?" — AssessRisk (the risk rules, before the issuer is asked).
Every run ends with ComposeResponse, RecordOutcome, CountForRisk and RaiseRiskAlerts, declined or not.
"""

from __future__ import annotations

from posgate.errors import PosgateError
from posgate.host.context import Kind, Message
from posgate.host.ports import HostPorts
from posgate.host.steps.base import Step
from posgate.host.steps.card import ReadCard
from posgate.host.steps.fields import CheckFields, RefuseUnsupported
from posgate.host.steps.issuer import AskIssuer
from posgate.host.steps.original import FindOriginal
from posgate.host.steps.pin import TranslatePin
from posgate.host.steps.record import RecordOutcome, RecordRequest, ReserveRefund
from posgate.host.steps.respond import ComposeResponse
from posgate.host.steps.reversal import HonourEarlyReversal, ReverseOriginal
from posgate.host.steps.risk import AssessRisk, CountForRisk, RaiseRiskAlerts
from posgate.host.steps.routing import SelectIssuer
from posgate.host.steps.settlement import SettleBatch, UploadBatch
from posgate.host.steps.signin import Echo, IssueWorkingKeys, SignOut
from posgate.host.steps.terminal import CompleteTestSwipe, IdentifyTerminal, RequireSignIn, VerifyMac
from posgate.iso8583.private_fields import parse_field60
from posgate.txnset import NETWORK_MANAGEMENT_MTIS, kind_of


def classify(request: Message) -> Kind:
    """What a request is, from its MTI, processing code (3), condition code (25) and 60.3.

    >>> classify({"t": "0200", "3": "000000", "25": "00", "60": "22000001000"})
    <Kind.SALE: 'sale'>
    >>> classify({"t": "0200", "3": "000000", "25": "06", "60": "20000001000"})
    <Kind.COMPLETION: 'completion'>
    >>> classify({"t": "0820", "60": "00000001301"})
    <Kind.ECHO: 'echo'>
    """
    mti = request.get("t", "")
    nmc = ""
    if mti in NETWORK_MANAGEMENT_MTIS:
        try:
            nmc = parse_field60(request["60"]).nmc if "60" in request else ""
        except PosgateError:
            nmc = ""
    return kind_of(mti, request.get("3"), request.get("25"), nmc)


def pipelines(p: HostPorts) -> dict[Kind, list[Step]]:
    """The decide-and-act steps per kind; a decline stops the list."""
    max_fen, timeout_s = p.policy.max_amount_fen, p.policy.issuer_timeout_s

    def check(kind: Kind) -> Step:
        return CheckFields(kind, max_fen)

    terminal = [IdentifyTerminal(p.terminals), RequireSignIn(), VerifyMac(p.terminals)]
    record = RecordRequest(p.transactions, p.stans, p.cards)
    ask = AskIssuer(p.issuers, p.transactions, p.forwarder, p.cards, p.policy, p.clock)
    pin, swipe = TranslatePin(p.issuers), CompleteTestSwipe(p.terminals)
    risk, reserve = AssessRisk(p.risk, p.cards), ReserveRefund(p.transactions)
    find = FindOriginal(p.transactions, p.cards)
    authorize = [ReadCard(), SelectIssuer(p.issuers), record, pin, ask]
    # a request a terminal can reverse (0400) is not carried out when its reversal was handled first
    recorded = [record, HonourEarlyReversal(p.transactions, p.forwarder, p.clock)]
    # purchases and refunds: the risk decision after the card is read and recorded, before the issuer
    purchase = [ReadCard(), SelectIssuer(p.issuers), *recorded, risk, pin, ask]
    with_original = [ReadCard(), SelectIssuer(p.issuers), *recorded, find]
    # an advice (0220): repeated until answered, never reversed by its terminal
    refund = [ReadCard(), SelectIssuer(p.issuers), record, find, risk, reserve, ask]
    return {
        Kind.SIGN_IN: [
            check(Kind.SIGN_IN),
            IdentifyTerminal(p.terminals),
            IssueWorkingKeys(p.terminals, p.policy),
        ],
        Kind.SIGN_OUT: [check(Kind.SIGN_OUT), IdentifyTerminal(p.terminals), SignOut()],
        Kind.ECHO: [check(Kind.ECHO), IdentifyTerminal(p.terminals), Echo()],
        Kind.BALANCE: [check(Kind.BALANCE), *terminal, *authorize],
        Kind.SALE: [check(Kind.SALE), *terminal, *purchase],
        Kind.PREAUTH: [check(Kind.PREAUTH), *terminal, *purchase],
        Kind.VOID: [check(Kind.VOID), *terminal, *with_original, pin, ask, swipe],
        Kind.COMPLETION_VOID: [check(Kind.COMPLETION_VOID), *terminal, *with_original, ask],
        Kind.PREAUTH_VOID: [check(Kind.PREAUTH_VOID), *terminal, *with_original, ask],
        Kind.COMPLETION: [check(Kind.COMPLETION), *terminal, *with_original, risk, ask],
        Kind.REFUND: [check(Kind.REFUND), *terminal, *refund],
        Kind.REVERSAL: [
            check(Kind.REVERSAL),
            *terminal,
            record,
            ReverseOriginal(p.transactions, p.forwarder, timeout_s, p.clock),
            swipe,
        ],
        # the MAC is required on 0500 and 0320 too: an unMACed 0500 could read the totals and close the batch
        Kind.SETTLEMENT: [check(Kind.SETTLEMENT), *terminal, record, SettleBatch(p.batches)],
        Kind.BATCH_UPLOAD: [check(Kind.BATCH_UPLOAD), *terminal, record, UploadBatch(p.batches)],
        Kind.UNSUPPORTED: [RefuseUnsupported()],
    }


def finishing_steps(p: HostPorts) -> list[Step]:
    """Run after every pipeline, declined or approved."""
    compose = ComposeResponse(p.policy.acquirer_id)
    record = RecordOutcome(p.transactions, compose, p.forwarder, p.clock)
    return [compose, record, CountForRisk(p.risk), RaiseRiskAlerts(p.risk)]
