"""`posgate terminal …`: the POS terminal simulator on the command line (a thin Typer shell over
`TerminalClient`).

The terminal's state (keys, STAN, batch, the last sale for reversal) lives in a JSON file, by default
`posgate-data/terminal-<tid>.json`, created from the demo fixture's terminal on first use; it is saved after
every run. Commands sign in by themselves when the terminal has no working keys (and once more if the host
answers `97`). A sale with no response is reversed at once (`98`); an approval whose MAC fails is reversed
(`A0`) and reported as a decline.

Exit codes: 0 approved · 1 declined (or the host refused the step) · 2 usage error (bad amount, card, PIN,
state file) · 3 the host cannot be reached, the connection broke or no response came in time.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from posgate.errors import ConfigError, EncodeError, PosgateError, SecurityError
from posgate.fixtures.document import read_demo_fixture
from posgate.security.keys import kcv
from posgate.terminal.cards import CardProfile, demo_card, manual_card
from posgate.terminal.client import (
    NothingToReverse,
    NotSignedIn,
    TerminalClient,
    TerminalConnectionError,
    TerminalError,
    TerminalTimeout,
)
from posgate.terminal.messages import AMOUNT_MAX_FEN
from posgate.terminal.receipt import format_receipt
from posgate.terminal.result import TxnResult
from posgate.terminal.state import DEMO_TID, TerminalState, demo_terminal_state

EXIT_APPROVED = 0
EXIT_DECLINED = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3

DEFAULT_STATE_DIR = Path("posgate-data")
DEFAULT_CARD = "debit-ok"

_AMOUNT = re.compile(r"([0-9]{1,10})(?:\.([0-9]{1,2}))?")
_PIN = re.compile(r"[0-9]{4,12}")

app = typer.Typer(
    name="terminal",
    help="POS terminal simulator: sign in, balance inquiry, sale, reversal and echo against posgate host.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class EntryMode(StrEnum):
    magstripe = "magstripe"
    manual = "manual"


def parse_amount_fen(text: str) -> int:
    """An amount in yuan (`12.34`, `12.3`, `12`) as integer fen, by string arithmetic (never a float).

    Raises `ValueError` with a message for anything else: more than 2 decimals, signs, letters, zero.

    >>> parse_amount_fen("12.34"), parse_amount_fen("0.01"), parse_amount_fen("12"), parse_amount_fen("12.3")
    (1234, 1, 1200, 1230)
    >>> parse_amount_fen("1.234")
    Traceback (most recent call last):
    ...
    ValueError: amount must be yuan with at most 2 decimals, like 12.34 (got '1.234')
    """
    match = _AMOUNT.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"amount must be yuan with at most 2 decimals, like 12.34 (got {text!r})")
    yuan, fen = match.group(1), (match.group(2) or "").ljust(2, "0")
    amount = int(yuan) * 100 + int(fen)
    if amount == 0:
        raise ValueError("amount must be greater than 0.00")
    if amount > AMOUNT_MAX_FEN:
        raise ValueError(f"amount must be at most {AMOUNT_MAX_FEN // 100}.{AMOUNT_MAX_FEN % 100:02d}")
    return amount


# ---------------------------------------------------------------------------------------------- options

HostOpt = Annotated[str, typer.Option("--host", help="posgate host address")]
PortOpt = Annotated[
    int, typer.Option("--port", envvar="POSGATE_POS_PORT", min=1, max=65535, help="posgate host POS port")
]
StateFileOpt = Annotated[
    Path | None,
    typer.Option("--state-file", help="terminal state file [default: posgate-data/terminal-<tid>.json]"),
]
TidOpt = Annotated[
    str, typer.Option("--tid", help="terminal id (a new state file starts from the demo terminal)")
]
CardOpt = Annotated[str, typer.Option("--card", help="demo card: PAN or profile (debit-ok, credit-ok, …)")]
PinOpt = Annotated[str | None, typer.Option("--pin", help="PIN to type [default: the card's fixture PIN]")]
NoPinOpt = Annotated[bool, typer.Option("--no-pin", help="send no PIN block (field 22 = 0x2)")]
EntryOpt = Annotated[EntryMode, typer.Option("--entry", help="how the card is read")]
ExpiryOpt = Annotated[
    str | None, typer.Option("--expiry", help="YYMM for --entry manual with a card not in the demo fixture")
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=0.1, help="seconds to wait for each response")]


def _fail(code: int, text: str) -> NoReturn:
    err.print(Text(text))
    raise typer.Exit(code)


def _state_path(state_file: Path | None, tid: str) -> Path:
    return state_file if state_file is not None else DEFAULT_STATE_DIR / f"terminal-{tid}.json"


def _load_state(path: Path, tid: str) -> TerminalState:
    if not path.exists():
        state = demo_terminal_state(tid)
        state.save(path)
        return state
    state = TerminalState.load(path)
    if state.tid != tid:
        raise ConfigError(f"state file {path} belongs to terminal {state.tid}, not {tid}")
    return state


def _merchant_name(mid: str) -> str:
    for merchant in read_demo_fixture().merchants:
        if merchant.mid == mid:
            return merchant.name
    return "posgate terminal"


def _resolve_card(card_ref: str, entry: EntryMode, expiry: str | None) -> CardProfile:
    try:
        card = demo_card(card_ref)
    except ConfigError:
        if entry is EntryMode.manual and card_ref.isdigit():
            if expiry is None:
                raise ConfigError(
                    f"--expiry is required for a card not in the demo fixture ({card_ref})"
                ) from None
            return manual_card(card_ref, expiry)
        raise
    if entry is EntryMode.manual:
        return manual_card(card.pan, expiry or card.expiry, card.default_pin)
    return card


def _resolve_pin(card: CardProfile, pin: str | None, no_pin: bool) -> str | None:
    if no_pin:
        return None
    pin = card.default_pin if pin is None else pin
    if not _PIN.fullmatch(pin):
        raise ConfigError("--pin must be 4 to 12 digits")
    return pin


def _print_result(result: TxnResult, state: TerminalState) -> int:
    receipt = format_receipt(result, _merchant_name(state.mid), state.tid, state.mid, datetime.now())
    out.print(Text(receipt))
    return EXIT_APPROVED if result.approved else EXIT_DECLINED


def _run(state_file: Path | None, tid: str, action: Callable[[TerminalState], Awaitable[int]]) -> NoReturn:
    """Load the state, run `action`, save the state whatever happened, map errors to exit codes."""
    path = _state_path(state_file, tid)
    try:
        state = _load_state(path, tid)
    except PosgateError as exc:
        _fail(EXIT_USAGE, str(exc))
    try:
        code = asyncio.run(action(state))
    except (TerminalConnectionError, TerminalTimeout) as exc:
        _fail(EXIT_CONNECTION, str(exc))
    except (NotSignedIn, NothingToReverse, SecurityError, TerminalError) as exc:
        _fail(EXIT_DECLINED, str(exc))
    except (EncodeError, ConfigError) as exc:
        _fail(EXIT_USAGE, str(exc))
    except PosgateError as exc:
        _fail(EXIT_DECLINED, str(exc))
    finally:
        state.save(path)
    raise typer.Exit(code)


async def _signed_in(client: TerminalClient) -> bool:
    """Sign in if the terminal has no working keys; False (after printing why) if the host refused."""
    if client.state.signed_in:
        return True
    result = await client.sign_in()
    if not result.approved:
        err.print(Text(f"sign-in refused: {result.response_code} {result.response_text}"))
        return False
    return True


async def _with_sign_in_retry(client: TerminalClient, send: Callable[[], Awaitable[TxnResult]]) -> TxnResult:
    """Send; if the host says the terminal is not signed in (97, header nibble 3), sign in and send again."""
    result = await send()
    if result.response_code == "97" or (result.sign_in_required and not result.approved):
        client.state.clear_keys()
        signed = await client.sign_in()
        if signed.approved:
            result = await send()
    return result


# ---------------------------------------------------------------------------------------------- commands


@app.command("sign-in")
def sign_in_command(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 5000,
    state_file: StateFileOpt = None,
    tid: TidOpt = DEMO_TID,
    with_tdk: Annotated[bool, typer.Option("--with-tdk", help="also ask for a track data key")] = False,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """Sign in (0800) and store the new working keys."""

    async def action(state: TerminalState) -> int:
        async with TerminalClient(host, port, state, timeout) as client:
            result = await client.sign_in(with_tdk=with_tdk)
        if not result.approved:
            err.print(Text(f"sign-in refused: {result.response_code} {result.response_text}"))
            return EXIT_DECLINED
        roles = (("PIK", state.pik_hex), ("MAK", state.mak_hex), ("TDK", state.tdk_hex))
        keys = ", ".join(f"{role} KCV {kcv(bytes.fromhex(key))}" for role, key in roles if key)
        out.print(Text(f"terminal {state.tid} signed in: {keys}"))
        return EXIT_APPROVED

    _run(state_file, tid, action)


@app.command("sign-out")
def sign_out_command(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 5000,
    state_file: StateFileOpt = None,
    tid: TidOpt = DEMO_TID,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """Sign out (0820, 60.3 = 002) and forget the working keys."""

    async def action(state: TerminalState) -> int:
        async with TerminalClient(host, port, state, timeout) as client:
            result = await client.sign_out()
        out.print(Text(f"sign-out: {result.response_code} {result.response_text}"))
        return EXIT_APPROVED if result.approved else EXIT_DECLINED

    _run(state_file, tid, action)


@app.command("echo")
def echo_command(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 5000,
    state_file: StateFileOpt = None,
    tid: TidOpt = DEMO_TID,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """Echo test (0820, 60.3 = 301)."""

    async def action(state: TerminalState) -> int:
        async with TerminalClient(host, port, state, timeout) as client:
            result = await client.echo()
        out.print(Text(f"echo: {result.response_code} {result.response_text} in {result.elapsed_ms:.1f} ms"))
        return EXIT_APPROVED if result.approved else EXIT_DECLINED

    _run(state_file, tid, action)


@app.command("balance")
def balance_command(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 5000,
    state_file: StateFileOpt = None,
    tid: TidOpt = DEMO_TID,
    card: CardOpt = DEFAULT_CARD,
    pin: PinOpt = None,
    no_pin: NoPinOpt = False,
    entry: EntryOpt = EntryMode.magstripe,
    expiry: ExpiryOpt = None,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """Balance inquiry (0200, 3 = 310000): prints the available amount."""
    try:
        profile = _resolve_card(card, entry, expiry)
        typed_pin = _resolve_pin(profile, pin, no_pin)
    except PosgateError as exc:
        _fail(EXIT_USAGE, str(exc))

    async def action(state: TerminalState) -> int:
        async with TerminalClient(host, port, state, timeout) as client:
            if not await _signed_in(client):
                return EXIT_DECLINED
            result = await _with_sign_in_retry(
                client, lambda: client.balance(profile, typed_pin, entry.value)
            )
        return _print_result(result, state)

    _run(state_file, tid, action)


@app.command("sale")
def sale_command(
    amount: Annotated[str, typer.Argument(help="amount in yuan, e.g. 12.34 or 12")],
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 5000,
    state_file: StateFileOpt = None,
    tid: TidOpt = DEMO_TID,
    card: CardOpt = DEFAULT_CARD,
    pin: PinOpt = None,
    no_pin: NoPinOpt = False,
    entry: EntryOpt = EntryMode.magstripe,
    expiry: ExpiryOpt = None,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """Sale (0200, 3 = 000000) of AMOUNT yuan: prints the receipt."""
    try:
        amount_fen = parse_amount_fen(amount)
    except ValueError as exc:
        _fail(EXIT_USAGE, str(exc))
    try:
        profile = _resolve_card(card, entry, expiry)
        typed_pin = _resolve_pin(profile, pin, no_pin)
    except PosgateError as exc:
        _fail(EXIT_USAGE, str(exc))

    async def action(state: TerminalState) -> int:
        async with TerminalClient(host, port, state, timeout) as client:
            if not await _signed_in(client):
                return EXIT_DECLINED
            try:
                result = await _with_sign_in_retry(
                    client, lambda: client.sale(profile, typed_pin, amount_fen, entry.value)
                )
            except TerminalTimeout as exc:
                err.print(Text(f"{exc}; reversing it (98)"))
                await _reverse_quietly(client, "98")
                raise
            if result.needs_reversal:
                err.print(Text("the approval's MAC does not verify: reversing it (A0)"))
                await _reverse_quietly(client, "A0")
        return _print_result(result, state)

    _run(state_file, tid, action)


async def _reverse_quietly(client: TerminalClient, reason: str) -> None:
    try:
        result = await client.reverse_last(reason)
    except TerminalError as exc:
        err.print(Text(f"reversal not completed ({exc}); run `posgate terminal reverse` again"))
        return
    err.print(Text(f"reversal: {result.response_code} {result.response_text}"))


@app.command("reverse")
def reverse_command(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 5000,
    state_file: StateFileOpt = None,
    tid: TidOpt = DEMO_TID,
    reason: Annotated[
        str, typer.Option("--reason", help="field 39: 98 no response, 96 failure, A0 MAC")
    ] = "98",
    timeout: TimeoutOpt = 10.0,
) -> None:
    """Reverse the terminal's last sale (0400, same STAN)."""

    async def action(state: TerminalState) -> int:
        if state.last is None:
            raise NothingToReverse(f"terminal {state.tid} has no transaction to reverse")
        async with TerminalClient(host, port, state, timeout) as client:
            if not await _signed_in(client):
                return EXIT_DECLINED
            result = await _with_sign_in_retry(client, lambda: client.reverse_last(reason))
        return _print_result(result, state)

    _run(state_file, tid, action)
