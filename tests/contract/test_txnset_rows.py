"""Every row of the transaction set round-trips through every layer that reads it: the terminal builds the
request, the host classifies it and checks its fields, the network request goes to the issuer, which
classifies it and answers with the row's effect on the account."""

from __future__ import annotations

import datetime as dt

import pytest

from posgate.host.context import CardView, TxnContext
from posgate.host.network_messages import authorization_request
from posgate.host.pipeline import classify
from posgate.iso8583.codec import decode_network, decode_pos, encode_network, encode_pos
from posgate.iso8583.framing import PosFrame
from posgate.issuer.rules import AccountSnapshot, AuthRequest, CardSnapshot, decide
from posgate.terminal.cards import demo_card
from posgate.terminal.messages import Original, financial_request
from posgate.terminal.state import demo_terminal_state
from posgate.txnset import ROWS, IssuerEffect, Kind, KindRow, row_of

ORIGINAL = Original(rrn="000000000123", batch="000001", stan="000042", auth_code="A1B2C3", date="1126")
CARD_ROWS = [row for row in ROWS if row.card]


@pytest.mark.parametrize("row", CARD_ROWS, ids=lambda row: row.kind.value)
def test_a_row_round_trips_terminal_host_issuer(row: KindRow) -> None:
    state = demo_terminal_state()
    card = demo_card("debit-ok")
    amount = None if not row.amount else 1234
    original = ORIGINAL if row.original is not None else None
    request = decode_pos(
        encode_pos(financial_request(row.kind, state, "000007", card, amount_fen=amount, original=original))
    )
    assert classify(request) is row.kind
    assert all(field in request for field in row.required if field not in ("2", "35"))

    ctx = TxnContext(
        frame=PosFrame(b"", b"", b""),
        request=request,
        received_at=dt.datetime(2026, 11, 26, 2, 30, tzinfo=dt.UTC),
        local_now=dt.datetime(2026, 11, 26, 10, 30),
        kind=row.kind,
        card=CardView(card.pan, "x", card.expiry, None, None),
        rrn="000000000456",
        network_stan="000099",
        transmission_dt="1126023000",
    )
    network = decode_network(encode_network(authorization_request(ctx, "49990000")))
    assert (network["t"], network["3"], network.get("25")) == (
        row.mti,
        row.processing_code,
        row.condition_code,
    )

    hold = 1234 if row.issuer_effect in (IssuerEffect.COMPLETE, IssuerEffect.RELEASE) else None
    auth = AuthRequest(
        network["t"], network["3"], int(network.get("4", "0")), network.get("25"), hold_fen=hold
    )
    assert auth.kind is row.issuer_kind
    account = AccountSnapshot("debit", balance_fen=100_000, held_fen=hold or 0)
    decision = decide(auth, CardSnapshot(state="active", expiry="3012", account=account), "2611")
    assert decision.response_code == "00"
    assert decision.effect is row.issuer_effect


def test_kinds_of_network_management_and_batch_messages() -> None:
    assert classify({"t": "0800", "60": "00000001003"}) is Kind.SIGN_IN
    assert classify({"t": "0820", "60": "00000001002"}) is Kind.SIGN_OUT
    assert classify({"t": "0400", "3": "000000"}) is Kind.REVERSAL
    assert row_of(Kind.SALE).reversible and not row_of(Kind.REFUND).reversible
