"""The issuer simulator's authorization rules, one rule at a time (pure: no store, no clock, no keys)."""

from __future__ import annotations

import dataclasses

import pytest

from posgate.iso8583.reasons import Reason
from posgate.issuer.rules import (
    AccountSnapshot,
    AuthRequest,
    CardSnapshot,
    Check,
    Decision,
    Effect,
    Kind,
    classify,
    decide,
)

TODAY = "2611"
DEBIT = AccountSnapshot("debit", balance_fen=1000, held_fen=0)
CREDIT = AccountSnapshot("credit", balance_fen=500, credit_limit_fen=2000, held_fen=100)


def card(**changes: object) -> CardSnapshot:
    return dataclasses.replace(CardSnapshot(state="active", expiry="3012", account=DEBIT), **changes)


def sale(amount_fen: int = 100, **changes: object) -> AuthRequest:
    return dataclasses.replace(AuthRequest("0200", "000000", amount_fen, "00", "3012"), **changes)


# ---- what is served


@pytest.mark.parametrize(
    ("mti", "processing_code", "condition", "kind"),
    [
        ("0200", "000000", "00", Kind.SALE),
        ("0200", "001000", None, Kind.SALE),
        ("0200", "000000", "06", Kind.COMPLETION),
        ("0220", "000000", "06", Kind.COMPLETION),
        ("0220", "000000", "00", Kind.SALE),
        ("0200", "310000", "00", Kind.BALANCE),
        ("0100", "310000", "00", Kind.BALANCE),
        ("0100", "030000", "06", Kind.PREAUTH),
        ("0100", "200000", "06", Kind.PREAUTH_VOID),
        ("0200", "200000", "00", Kind.CREDIT),
        ("0220", "200000", "00", Kind.CREDIT),
        ("0200", "400000", "00", None),
        ("0200", "030000", "06", None),
        ("0220", "310000", "00", None),
        ("0100", "000000", "00", None),
        ("0420", "000000", "00", None),
    ],
)
def test_classify(mti: str, processing_code: str, condition: str | None, kind: Kind | None) -> None:
    assert classify(mti, processing_code, condition) is kind


def test_unsupported_transaction_is_12() -> None:
    decision = decide(sale(processing_code="400000"), card(), TODAY)
    assert decision == Decision(Reason.INVALID_TRANSACTION)
    assert decision.response_code == "12"


# ---- approvals and effects


def test_sale_within_funds_is_a_debit() -> None:
    decision = decide(sale(1000), card(), TODAY)
    assert decision.approved and decision.response_code == "00"
    assert (decision.effect, decision.amount_fen) == (Effect.DEBIT, 1000)


def test_balance_inquiry_has_no_effect_and_ignores_the_amount() -> None:
    decision = decide(sale(0, processing_code="310000"), card(), TODAY)
    assert decision == Decision(Reason.APPROVED)


def test_preauthorization_holds() -> None:
    request = AuthRequest("0100", "030000", 600, "06", "3012")
    decision = decide(request, card(), TODAY)
    assert (decision.reason, decision.effect, decision.amount_fen) == (Reason.APPROVED, Effect.HOLD, 600)


def test_void_or_refund_credits_without_a_funds_check() -> None:
    decision = decide(sale(50_000, processing_code="200000"), card(), TODAY)
    assert (decision.reason, decision.effect, decision.amount_fen) == (Reason.APPROVED, Effect.CREDIT, 50_000)


def test_completion_of_an_open_preauthorization_releases_its_hold() -> None:
    held = card(account=AccountSnapshot("debit", balance_fen=1000, held_fen=800))
    request = sale(900, condition_code="06", hold_fen=800)
    decision = decide(request, held, TODAY)
    assert (decision.effect, decision.amount_fen, decision.released_fen) == (Effect.COMPLETE, 900, 800)


def test_completion_beyond_funds_and_hold_is_51() -> None:
    held = card(account=AccountSnapshot("debit", balance_fen=1000, held_fen=800))
    decision = decide(sale(1001, condition_code="06", hold_fen=800), held, TODAY)
    assert decision.reason is Reason.INSUFFICIENT_FUNDS


def test_completion_without_its_preauthorization_is_a_plain_debit() -> None:
    decision = decide(sale(300, condition_code="06"), card(), TODAY)
    assert (decision.effect, decision.released_fen) == (Effect.DEBIT, 0)


def test_preauthorization_void_releases_the_hold() -> None:
    request = AuthRequest("0100", "200000", 800, "06", "3012", hold_fen=800)
    decision = decide(request, card(), TODAY)
    assert (decision.effect, decision.released_fen, decision.amount_fen) == (Effect.RELEASE, 800, 0)


def test_preauthorization_void_of_an_unknown_hold_is_25() -> None:
    request = AuthRequest("0100", "200000", 800, "06", "3012")
    assert decide(request, card(), TODAY).reason is Reason.ORIGINAL_NOT_FOUND


def test_preauthorization_void_with_another_amount_is_64() -> None:
    request = AuthRequest("0100", "200000", 700, "06", "3012", hold_fen=800)
    assert decide(request, card(), TODAY).reason is Reason.AMOUNT_DIFFERS


# ---- card


def test_unknown_card_is_14() -> None:
    assert decide(sale(), None, TODAY) == Decision(Reason.INVALID_CARD)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("lost", Reason.LOST_CARD),
        ("stolen", Reason.STOLEN_CARD),
        ("blocked", Reason.PIN_TRIES_EXCEEDED),
        ("closed", Reason.DO_NOT_HONOUR),
    ],
)
def test_card_state(state: str, reason: Reason) -> None:
    assert decide(sale(), card(state=state), TODAY) == Decision(reason)


def test_three_pin_failures_block_the_card_even_with_a_right_pin() -> None:
    decision = decide(sale(pin=Check.PASSED), card(pin_failures=3), TODAY)
    assert decision == Decision(Reason.PIN_TRIES_EXCEEDED)


def test_lost_comes_before_expired() -> None:
    assert decide(sale(expiry="2001"), card(state="lost", expiry="2001"), TODAY).reason is Reason.LOST_CARD


@pytest.mark.parametrize(("expiry", "reason"), [("2610", Reason.EXPIRED_CARD), ("2611", Reason.APPROVED)])
def test_expiry_month_is_valid_to_its_end(expiry: str, reason: Reason) -> None:
    assert decide(sale(expiry=expiry), card(expiry=expiry), TODAY).reason is reason


def test_expiry_of_the_card_is_used_when_the_request_has_none() -> None:
    assert decide(sale(expiry=None), card(expiry="2001"), TODAY).reason is Reason.EXPIRED_CARD


def test_expired_comes_before_a_bad_cvv() -> None:
    decision = decide(sale(expiry="2001", cvv=Check.FAILED), card(expiry="2001"), TODAY)
    assert decision.reason is Reason.EXPIRED_CARD


@pytest.mark.parametrize("verdict", [Check.FAILED, Check.MALFORMED])
def test_bad_track_cvv_is_05(verdict: Check) -> None:
    assert decide(sale(cvv=verdict), card(), TODAY) == Decision(Reason.DO_NOT_HONOUR)


def test_expiry_other_than_the_cards_is_05() -> None:
    assert decide(sale(expiry="3101"), card(), TODAY) == Decision(Reason.DO_NOT_HONOUR)


@pytest.mark.parametrize("verdict", [Check.FAILED, Check.MALFORMED])
def test_bad_arqc_is_05(verdict: Check) -> None:
    assert decide(sale(arqc=verdict), card(), TODAY) == Decision(Reason.DO_NOT_HONOUR)


def test_good_cvv_and_arqc_approve() -> None:
    assert decide(sale(cvv=Check.PASSED, arqc=Check.PASSED), card(), TODAY).approved


def test_bad_cvv_comes_before_a_wrong_pin_and_does_not_count_it() -> None:
    decision = decide(sale(cvv=Check.FAILED, pin=Check.FAILED), card(), TODAY)
    assert decision == Decision(Reason.DO_NOT_HONOUR)


# ---- PIN


def test_wrong_pin_is_55_and_counts() -> None:
    assert decide(sale(pin=Check.FAILED), card(), TODAY) == Decision(Reason.WRONG_PIN, pin_failures=1)


def test_second_wrong_pin_is_55() -> None:
    decision = decide(sale(pin=Check.FAILED), card(pin_failures=1), TODAY)
    assert decision == Decision(Reason.WRONG_PIN, pin_failures=2)


def test_third_wrong_pin_in_a_row_is_75() -> None:
    decision = decide(sale(pin=Check.FAILED), card(pin_failures=2), TODAY)
    assert decision == Decision(Reason.PIN_TRIES_EXCEEDED, pin_failures=3)


def test_right_pin_resets_the_count() -> None:
    decision = decide(sale(pin=Check.PASSED), card(pin_failures=2), TODAY)
    assert decision.approved and decision.pin_failures == 0


def test_right_pin_resets_the_count_even_when_declined_for_funds() -> None:
    decision = decide(sale(5000, pin=Check.PASSED), card(pin_failures=2), TODAY)
    assert decision.reason is Reason.INSUFFICIENT_FUNDS and decision.pin_failures == 0


def test_right_pin_with_no_failures_leaves_the_count() -> None:
    assert decide(sale(pin=Check.PASSED), card(), TODAY).pin_failures is None


def test_no_pin_block_leaves_the_count() -> None:
    assert decide(sale(), card(pin_failures=2), TODAY).pin_failures is None


def test_malformed_pin_block_is_96_and_not_counted() -> None:
    assert decide(sale(pin=Check.MALFORMED), card(pin_failures=2), TODAY) == Decision(Reason.SYSTEM_ERROR)


# ---- amount and funds


@pytest.mark.parametrize("amount", [0, -1])
def test_amount_not_positive_is_13(amount: int) -> None:
    assert decide(sale(amount), card(), TODAY).reason is Reason.INVALID_AMOUNT


def test_amount_not_positive_is_13_for_a_refund_too() -> None:
    assert decide(sale(0, processing_code="200000"), card(), TODAY).reason is Reason.INVALID_AMOUNT


def test_wrong_pin_comes_before_the_amount() -> None:
    assert decide(sale(0, pin=Check.FAILED), card(), TODAY).reason is Reason.WRONG_PIN


def test_debit_available_is_balance_minus_holds() -> None:
    held = card(account=AccountSnapshot("debit", balance_fen=1000, held_fen=300))
    assert decide(sale(700), held, TODAY).approved
    assert decide(sale(701), held, TODAY) == Decision(Reason.INSUFFICIENT_FUNDS)


def test_credit_available_is_limit_minus_used_minus_holds() -> None:
    credit = card(account=CREDIT)  # 2000 - 500 - 100 = 1400
    assert decide(sale(1400), credit, TODAY).approved
    assert decide(sale(1401), credit, TODAY).reason is Reason.INSUFFICIENT_FUNDS


def test_preauthorization_beyond_available_is_51() -> None:
    request = AuthRequest("0100", "030000", 1001, "06", "3012")
    assert decide(request, card(), TODAY).reason is Reason.INSUFFICIENT_FUNDS


def test_available_fen() -> None:
    assert DEBIT.available_fen == 1000
    assert CREDIT.available_fen == 1400


# ---- advices


def test_advice_is_booked_past_the_available_amount() -> None:
    decision = decide(sale(5000, mti="0220"), card(), TODAY)
    assert (decision.reason, decision.effect, decision.forced) == (Reason.APPROVED, Effect.DEBIT, True)


def test_advice_skips_card_checks() -> None:
    request = sale(100, mti="0220", processing_code="200000", cvv=Check.FAILED, pin=Check.FAILED)
    decision = decide(request, card(state="lost"), TODAY)
    assert (decision.reason, decision.effect) == (Reason.APPROVED, Effect.CREDIT)


def test_advice_of_an_unknown_card_is_14() -> None:
    assert decide(sale(mti="0220"), None, TODAY).reason is Reason.INVALID_CARD


def test_advice_with_no_amount_is_13() -> None:
    assert decide(sale(0, mti="0220"), card(), TODAY).reason is Reason.INVALID_AMOUNT


def test_declined_keeps_the_pin_count() -> None:
    approved = Decision(Reason.APPROVED, Effect.DEBIT, 100, pin_failures=0)
    decision = approved.declined(Reason.INSUFFICIENT_FUNDS)
    assert decision == Decision(Reason.INSUFFICIENT_FUNDS, pin_failures=0)
