"""The authorization path, readable top to bottom: the ordered steps for each kind of POS message.

"Where is response code 51 decided?" — AskIssuer maps the issuer's answer; "where is 97?" — IdentifyTerminal
and RequireSignIn. Every run ends with ComposeResponse and RecordOutcome, declined or not.
"""

from __future__ import annotations

from posgate.host.context import Kind, Message
from posgate.host.steps.base import HostServices, Step
from posgate.host.steps.card import ReadCard
from posgate.host.steps.fields import CheckFields
from posgate.host.steps.issuer import AskIssuer
from posgate.host.steps.pin import TranslatePin
from posgate.host.steps.record import RecordOutcome, RecordRequest
from posgate.host.steps.respond import ComposeResponse
from posgate.host.steps.reversal import ReverseOriginal
from posgate.host.steps.routing import SelectIssuer
from posgate.host.steps.signin import Echo, IssueWorkingKeys, SignOut
from posgate.host.steps.terminal import IdentifyTerminal, RequireSignIn, VerifyMac
from posgate.iso8583.private_fields import parse_field60


def classify(request: Message) -> Kind:
    """What a request is, from MTI, processing code (3), condition code (25) and 60.1 / 60.3.

    >>> classify({"t": "0200", "3": "000000", "25": "00", "60": "22000001000"})
    <Kind.SALE: 'sale'>
    >>> classify({"t": "0820", "60": "00000001301"})
    <Kind.ECHO: 'echo'>
    """
    mti = request.get("t")
    try:
        f60 = parse_field60(request["60"]) if "60" in request else None
    except Exception:
        f60 = None
    processing = request.get("3", "")
    condition = request.get("25", "")
    if mti == "0800" and f60 and f60.nmc in ("003", "004"):
        return Kind.SIGN_IN
    if mti == "0820" and f60 and f60.nmc == "002":
        return Kind.SIGN_OUT
    if mti == "0820" and f60 and f60.nmc == "301":
        return Kind.ECHO
    if mti == "0200" and processing == "310000":
        return Kind.BALANCE
    if mti == "0200" and processing == "000000" and condition == "00":
        return Kind.SALE
    if mti == "0400":
        return Kind.REVERSAL
    return Kind.UNSUPPORTED


def pipelines(s: HostServices) -> dict[Kind, list[Step]]:
    """The decide-and-act steps per kind; a decline stops the list."""
    return {
        Kind.SIGN_IN: [CheckFields(s, Kind.SIGN_IN), IdentifyTerminal(s), IssueWorkingKeys(s)],
        Kind.SIGN_OUT: [CheckFields(s, Kind.SIGN_OUT), IdentifyTerminal(s), SignOut(s)],
        Kind.ECHO: [CheckFields(s, Kind.ECHO), IdentifyTerminal(s), Echo(s)],
        Kind.BALANCE: [
            CheckFields(s, Kind.BALANCE),
            IdentifyTerminal(s),
            RequireSignIn(s),
            VerifyMac(s),
            ReadCard(s),
            SelectIssuer(s),
            RecordRequest(s),
            TranslatePin(s),
            AskIssuer(s),
        ],
        Kind.SALE: [
            CheckFields(s, Kind.SALE),
            IdentifyTerminal(s),
            RequireSignIn(s),
            VerifyMac(s),
            ReadCard(s),
            SelectIssuer(s),
            RecordRequest(s),
            TranslatePin(s),
            AskIssuer(s),
        ],
        Kind.REVERSAL: [
            CheckFields(s, Kind.REVERSAL),
            IdentifyTerminal(s),
            RequireSignIn(s),
            VerifyMac(s),
            RecordRequest(s),
            ReverseOriginal(s),
        ],
        Kind.UNSUPPORTED: [],
    }


def finishing_steps(s: HostServices) -> list[Step]:
    """Run after every pipeline, declined or approved."""
    return [ComposeResponse(s), RecordOutcome(s)]
