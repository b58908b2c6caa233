"""The POS policy (`terminal.policy`) on a fake terminal, no socket: sign in first and again on `97`, reverse
on a time-out or an approval whose MAC / ARPC fails — only what is reversible — and settle after reversing
what still waits for its reversal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from posgate.terminal.errors import (
    PendingReversal,
    TerminalConnectionError,
    TerminalError,
    TerminalTimeout,
    UnknownOriginal,
)
from posgate.terminal.policy import PosPolicy, asks_for_sign_in
from posgate.terminal.result import TxnResult, result_from_message
from posgate.terminal.settlement import SettlementResult
from posgate.terminal.state import LastTransaction, TerminalState, demo_terminal_state

KEY_HEX = "11" * 16


def answer(code: str, mti: str = "0210", *, mac_ok: bool | None = None, arpc_ok: bool | None = None,
           sign_in_required: bool = False) -> TxnResult:  # fmt: skip
    result = result_from_message(
        {"t": mti, "11": "000001", "39": code}, mac_ok, sign_in_required=sign_in_required
    )
    result.arpc_ok = arpc_ok
    return result


def settled(code: str) -> SettlementResult:
    return SettlementResult(balanced=code == "00", uploaded=0, responses=[answer(code, "0510")], settled=True)


def pending_record() -> LastTransaction:
    return LastTransaction(
        mti="0200", processing_code="000000", stan="000007", amount_fen=100, entry_mode="021",
        condition_code="00", field60="22000001000600", batch="000001",
    )  # fmt: skip


@dataclass
class FakeTerminal:
    """Answers from scripts; records what the policy asked of it."""

    state: TerminalState = field(default_factory=demo_terminal_state)
    sign_ins: list[str] = field(default_factory=lambda: ["00"])
    reversals: list[TxnResult | TerminalError] = field(default_factory=lambda: [answer("00", "0410")])
    settlements: list[SettlementResult] = field(default_factory=lambda: [settled("00")])
    calls: list[str] = field(default_factory=list)

    async def sign_in(self) -> TxnResult:
        code = self.sign_ins.pop(0)
        self.calls.append(f"sign_in {code}")
        if code == "00":
            self.state.pik_hex = self.state.mak_hex = KEY_HEX
        return answer(code, "0810")

    async def reverse_last(self, reason: str = "98") -> TxnResult:
        self.calls.append(f"reverse {reason}")
        outcome = self.reversals.pop(0)
        if isinstance(outcome, TerminalError):
            raise outcome
        if outcome.approved:
            self.state.last = None
        return outcome

    async def settle(self) -> SettlementResult:
        self.calls.append("settle")
        last = self.state.last
        if last is not None and last.response_code is None:
            raise PendingReversal("STAN 000007 got no answer and is not reversed yet")
        return self.settlements.pop(0)


def script(terminal: FakeTerminal, *steps: TxnResult | TerminalError) -> Callable[[], Awaitable[TxnResult]]:
    """A `send` that answers (or raises) `steps` in turn."""
    queue = list(steps)

    async def send() -> TxnResult:
        terminal.calls.append("send")
        step = queue.pop(0)
        if isinstance(step, TerminalError):
            raise step
        return step

    return send


def signed_in() -> FakeTerminal:
    terminal = FakeTerminal()
    terminal.state.pik_hex = terminal.state.mak_hex = KEY_HEX
    return terminal


# ---------------------------------------------------------------------------------------------- sign-in


async def test_signs_in_only_without_working_keys() -> None:
    fresh = FakeTerminal()
    assert (await PosPolicy(fresh).ensure_signed_in()) is not None
    assert fresh.calls == ["sign_in 00"]
    keyed = signed_in()
    assert await PosPolicy(keyed).ensure_signed_in() is None
    assert keyed.calls == []


async def test_97_signs_in_again_and_sends_once_more() -> None:
    terminal = signed_in()
    outcome = await PosPolicy(terminal).transact("sale", script(terminal, answer("97"), answer("00")))
    assert terminal.calls == ["send", "sign_in 00", "send"]
    assert outcome.refused is not None and outcome.refused.response_code == "97"
    assert outcome.sign_in is not None and outcome.sign_in.approved
    assert outcome.result is not None and outcome.result.response_code == "00" and outcome.approved


async def test_when_the_sign_in_is_refused_the_97_stands_and_the_keys_are_gone() -> None:
    terminal = signed_in()
    terminal.sign_ins = ["96"]
    outcome = await PosPolicy(terminal).transact("sale", script(terminal, answer("97")))
    assert terminal.calls == ["send", "sign_in 96"]
    assert outcome.result is not None and outcome.result.response_code == "97"
    assert not terminal.state.signed_in and outcome.reversal_reason is None


async def test_a_97_on_the_second_attempt_is_not_retried_again() -> None:
    terminal = signed_in()
    outcome = await PosPolicy(terminal).transact("sale", script(terminal, answer("97"), answer("97")))
    assert terminal.calls == ["send", "sign_in 00", "send"]
    assert outcome.result is not None and outcome.result.response_code == "97"


def test_what_asks_for_a_sign_in() -> None:
    assert asks_for_sign_in(answer("97"))
    assert asks_for_sign_in(answer("A0", sign_in_required=True))  # a decline with processing requirement 3
    assert not asks_for_sign_in(answer("00", sign_in_required=True))
    assert not asks_for_sign_in(answer("51"))


# ---------------------------------------------------------------------------------------------- reversals


@pytest.mark.parametrize("kind", ["sale", "preauth", "void", "completion", "preauth_void", "completion_void"])
async def test_no_answer_to_a_reversible_transaction_reverses_it_with_98(kind: str) -> None:
    terminal = signed_in()
    timeout = TerminalTimeout("no response to 0200 STAN 000001")
    outcome = await PosPolicy(terminal).transact(kind, script(terminal, timeout))
    assert terminal.calls == ["send", "reverse 98"]
    assert outcome.timeout is timeout and outcome.result is None
    assert outcome.reversal_reason == "98" and outcome.reversal is not None and outcome.reversal.approved
    assert not outcome.unresolved


@pytest.mark.parametrize("kind", ["balance", "refund", "reversal"])
async def test_no_answer_to_what_is_not_reversible_is_only_reported(kind: str) -> None:
    terminal = signed_in()
    outcome = await PosPolicy(terminal).transact(kind, script(terminal, TerminalTimeout("no response")))
    assert terminal.calls == ["send"]
    assert outcome.timeout is not None and outcome.reversal_reason is None


@pytest.mark.parametrize(
    ("failure", "reason"), [({"mac_ok": False}, "A0"), ({"arpc_ok": False}, "96")], ids=["MAC", "ARPC"]
)
async def test_an_approval_that_does_not_verify_is_reversed_and_is_no_approval(
    failure: dict[str, bool], reason: str
) -> None:
    terminal = signed_in()
    outcome = await PosPolicy(terminal).transact("sale", script(terminal, answer("00", **failure)))
    assert terminal.calls == ["send", f"reverse {reason}"]
    assert outcome.reversal_reason == reason and not outcome.approved


@pytest.mark.parametrize("kind", ["balance", "refund"])
async def test_a_balance_or_refund_that_does_not_verify_is_not_reversed(kind: str) -> None:
    """Reversing would send the 0400 of `state.last`: some earlier sale, not this answer's transaction."""
    terminal = signed_in()
    terminal.state.last = pending_record()
    outcome = await PosPolicy(terminal).transact(kind, script(terminal, answer("00", mac_ok=False)))
    assert terminal.calls == ["send"]
    assert outcome.reversal_reason is None and not outcome.approved


@pytest.mark.parametrize(
    "failure",
    [
        TerminalTimeout("no response to 0400"),
        TerminalConnectionError("connection lost"),
        answer("96", "0410"),
    ],
    ids=["no answer", "connection lost", "refused"],
)
async def test_a_reversal_that_does_not_go_through_is_reported_never_raised(
    failure: TxnResult | TerminalError,
) -> None:
    terminal = signed_in()
    terminal.reversals = [failure]
    outcome = await PosPolicy(terminal).transact("sale", script(terminal, TerminalTimeout("no response")))
    assert outcome.unresolved
    if isinstance(failure, TerminalError):
        assert outcome.reversal_error is failure and outcome.reversal is None
    else:
        assert outcome.reversal is failure


async def test_other_errors_go_through() -> None:
    terminal = signed_in()
    with pytest.raises(UnknownOriginal):
        await PosPolicy(terminal).transact("void", script(terminal, UnknownOriginal("no sale with RRN …")))
    assert terminal.calls == ["send"]


async def test_a_sign_in_that_times_out_after_a_97_counts_as_the_transactions_time_out() -> None:
    terminal = signed_in()

    async def no_answer() -> TxnResult:
        raise TerminalTimeout("no response to 0800")

    terminal.sign_in = no_answer  # type: ignore[method-assign]
    outcome = await PosPolicy(terminal).transact("sale", script(terminal, answer("97")))
    assert outcome.timeout is not None and outcome.reversal_reason == "98"


# ---------------------------------------------------------------------------------------------- settlement


async def test_settling_reverses_what_still_waits_for_its_reversal_first() -> None:
    terminal = signed_in()
    terminal.state.last = pending_record()
    outcome = await PosPolicy(terminal).settle()
    assert terminal.calls == ["reverse 98", "settle"]
    assert outcome.reversal is not None and outcome.result is not None and outcome.result.settled


async def test_when_that_reversal_fails_the_batch_is_not_settled() -> None:
    terminal = signed_in()
    terminal.state.last = pending_record()
    terminal.reversals = [TerminalTimeout("no response to 0400")]
    outcome = await PosPolicy(terminal).settle()
    assert terminal.calls == ["reverse 98", "settle"]
    assert isinstance(outcome.pending, PendingReversal) and outcome.result is None
    assert isinstance(outcome.reversal_error, TerminalTimeout)


async def test_a_97_to_the_settlement_signs_in_and_settles_again() -> None:
    terminal = signed_in()
    terminal.settlements = [settled("97"), settled("00")]
    outcome = await PosPolicy(terminal).settle()
    assert terminal.calls == ["settle", "sign_in 00", "settle"]
    assert outcome.refused is not None and outcome.refused.response_code == "97"
    assert outcome.result is not None and outcome.result.response_code == "00"


async def test_settling_without_a_pending_reversal_just_settles() -> None:
    terminal = signed_in()
    terminal.state.last = pending_record()
    terminal.state.last.response_code = "00"  # answered: nothing to reverse
    outcome = await PosPolicy(terminal).settle()
    assert terminal.calls == ["settle"] and outcome.reversal is None
