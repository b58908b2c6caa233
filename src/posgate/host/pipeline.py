"""The authorization path, readable top to bottom: the ordered steps for each kind of POS message.

"Where is response code 51 decided?" — AskIssuer maps the issuer's answer; "where is 97?" — IdentifyTerminal
and RequireSignIn; "where is 30?" — CheckFields (every field's content, before any MAC is trusted);
"where are 58, 59, 61, 65?" — AssessRisk (the risk rules, before the issuer is asked).
Every run ends with ComposeResponse and RecordOutcome, declined or not.
"""

from __future__ import annotations

from posgate.errors import PosgateError
from posgate.host.context import Kind, Message
from posgate.host.steps.base import HostServices, Step
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


def pipelines(s: HostServices) -> dict[Kind, list[Step]]:
    """The decide-and-act steps per kind; a decline stops the list."""
    terminal = [IdentifyTerminal(s), RequireSignIn(s), VerifyMac(s)]
    authorize = [ReadCard(s), SelectIssuer(s), RecordRequest(s), TranslatePin(s), AskIssuer(s)]
    # a request a terminal can reverse (0400) is not carried out when its reversal was handled first
    record = [RecordRequest(s), HonourEarlyReversal(s)]
    # purchases and refunds: the risk decision after the card is read and recorded, before the issuer
    purchase = [ReadCard(s), SelectIssuer(s), *record, AssessRisk(s), TranslatePin(s), AskIssuer(s)]
    with_original = [ReadCard(s), SelectIssuer(s), *record, FindOriginal(s)]
    return {
        Kind.SIGN_IN: [CheckFields(s, Kind.SIGN_IN), IdentifyTerminal(s), IssueWorkingKeys(s)],
        Kind.SIGN_OUT: [CheckFields(s, Kind.SIGN_OUT), IdentifyTerminal(s), SignOut(s)],
        Kind.ECHO: [CheckFields(s, Kind.ECHO), IdentifyTerminal(s), Echo(s)],
        Kind.BALANCE: [CheckFields(s, Kind.BALANCE), *terminal, *authorize],
        Kind.SALE: [CheckFields(s, Kind.SALE), *terminal, *purchase],
        Kind.PREAUTH: [CheckFields(s, Kind.PREAUTH), *terminal, *purchase],
        Kind.VOID: [
            CheckFields(s, Kind.VOID),
            *terminal,
            *with_original,
            TranslatePin(s),
            AskIssuer(s),
            CompleteTestSwipe(s),
        ],
        Kind.COMPLETION_VOID: [CheckFields(s, Kind.COMPLETION_VOID), *terminal, *with_original, AskIssuer(s)],
        Kind.PREAUTH_VOID: [CheckFields(s, Kind.PREAUTH_VOID), *terminal, *with_original, AskIssuer(s)],
        Kind.COMPLETION: [
            CheckFields(s, Kind.COMPLETION),
            *terminal,
            *with_original,
            AssessRisk(s),
            AskIssuer(s),
        ],
        Kind.REFUND: [  # an advice (0220): repeated until answered, never reversed by its terminal
            CheckFields(s, Kind.REFUND),
            *terminal,
            ReadCard(s),
            SelectIssuer(s),
            RecordRequest(s),
            FindOriginal(s),
            AssessRisk(s),
            ReserveRefund(s),
            AskIssuer(s),
        ],
        Kind.REVERSAL: [
            CheckFields(s, Kind.REVERSAL),
            *terminal,
            RecordRequest(s),
            ReverseOriginal(s),
            CompleteTestSwipe(s),
        ],
        # the MAC is required on 0500 and 0320 too: an unMACed 0500 could read the totals and close the batch
        Kind.SETTLEMENT: [CheckFields(s, Kind.SETTLEMENT), *terminal, RecordRequest(s), SettleBatch(s)],
        Kind.BATCH_UPLOAD: [CheckFields(s, Kind.BATCH_UPLOAD), *terminal, RecordRequest(s), UploadBatch(s)],
        Kind.UNSUPPORTED: [RefuseUnsupported(s)],
    }


def finishing_steps(s: HostServices) -> list[Step]:
    """Run after every pipeline, declined or approved."""
    return [ComposeResponse(s), RecordOutcome(s), CountForRisk(s), RaiseRiskAlerts(s)]
