"""`posgate terminal …`: the POS terminal simulator on the command line (a thin Typer shell over
`TerminalClient` and `day.play_day`).

The terminal's state (keys, STAN, batch, the last reversible transaction, the journal of the open batch,
the chips' ATCs) lives in a JSON file, by default `posgate-data/terminal-<tid>.json`, created from the demo
fixture's terminal on first use; it is saved after every run. Commands sign in by themselves when the
terminal has no working keys (and once more if the host answers `97`). A reversible transaction with no
response is reversed at once (`98`); an approval whose MAC (or chip ARPC) fails is reversed (`A0` / `96`)
and reported as a decline; `settle` first reverses a transaction still waiting for its reversal. These are
the POS policy's rules (`policy.PosPolicy`), which `terminal day` and `posgate bench` follow too.

Transactions on an original (`void`, `refund`, `complete`, `preauth-void`, `complete-void`) find it in the
journal by RRN; the card defaults to the original's (the cashier asks for the same card).
`--entry` is how the card is read: magstripe, chip, contactless, fallback or manual (default: the chip of a
chip card, else the stripe).

Exit codes: 0 approved (settle: the batch closed; day: the settlement balanced) · 1 declined (or the host
refused the step) · 2 usage error (bad amount, card, PIN, RRN, state file) · 3 the host cannot be reached,
the connection broke or no response came in time.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NamedTuple, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from posgate.errors import ConfigError, EncodeError, PosgateError, SecurityError
from posgate.fixtures.document import read_demo_fixture
from posgate.money import yuan
from posgate.security.keys import kcv
from posgate.security.pos_tls import client_context
from posgate.terminal.cards import CardProfile, default_entry, demo_card, manual_card
from posgate.terminal.client import TerminalClient
from posgate.terminal.day import DayReport, play_day
from posgate.terminal.errors import (
    NothingToReverse,
    NotSignedIn,
    TerminalConnectionError,
    TerminalError,
    TerminalTimeout,
    UnknownOriginal,
)
from posgate.terminal.journal import (
    BALANCE,
    COMPLETION,
    COMPLETION_VOID,
    PREAUTH,
    PREAUTH_VOID,
    REFUND,
    SALE,
    VOID,
    open_pan,
)
from posgate.terminal.messages import AMOUNT_MAX_FEN
from posgate.terminal.policy import PosPolicy
from posgate.terminal.receipt import format_receipt
from posgate.terminal.result import TxnResult, response_text
from posgate.terminal.settlement import SettlementResult
from posgate.terminal.state import DEMO_TID, TerminalState, demo_terminal_state

EXIT_APPROVED = 0
EXIT_DECLINED = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3

DEFAULT_STATE_DIR = Path("posgate-data")
DEFAULT_CARD = "debit-ok"
DEFAULT_DAY_CARDS = "debit-ok,debit-low,debit-pin888,credit-ok,credit-chip,credit-chip-2"

_AMOUNT = re.compile(r"([0-9]{1,10})(?:\.([0-9]{1,2}))?")
_PIN = re.compile(r"[0-9]{4,12}")
_RRN = re.compile(r"[0-9A-Za-z]{12}")
_MMDD = re.compile(r"(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])")

app = typer.Typer(
    name="terminal",
    help=(
        "POS terminal simulator against posgate host: sign in, balance, sale, void, refund, pre-authorization"
        " and completion (and their voids), reversal, settlement, echo, and a whole trading day."
    ),
    no_args_is_help=True,
    add_completion=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class EntryMode(StrEnum):
    magstripe = "magstripe"
    chip = "chip"
    contactless = "contactless"
    fallback = "fallback"
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
EntryOpt = Annotated[
    EntryMode | None,
    typer.Option("--entry", help="how the card is read [default: the chip of a chip card, else the stripe]"),
]
OriginalCardOpt = Annotated[
    str | None,
    typer.Option("--card", help="demo card: PAN or profile [default: the original transaction's card]"),
]
RrnArg = Annotated[str, typer.Argument(help="the original's retrieval reference number (12 characters)")]
AmountArg = Annotated[str, typer.Argument(help="amount in yuan, e.g. 12.34 or 12")]
OriginalDateOpt = Annotated[
    str | None,
    typer.Option("--original-date", help="MMDD of the original, when it is not in the journal"),
]
ExpiryOpt = Annotated[
    str | None, typer.Option("--expiry", help="YYMM for --entry manual with a card not in the demo fixture")
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=0.1, help="seconds to wait for each response")]
TlsOpt = Annotated[
    bool,
    typer.Option(
        "--tls",
        envvar="POSGATE_TERMINAL_TLS",
        help="connect over TLS, trusting the system's CAs (implied by --tls-ca, --tls-cert)",
    ),
]
TlsCaOpt = Annotated[
    Path | None,
    typer.Option(
        "--tls-ca", envvar="POSGATE_TERMINAL_TLS_CA", help="TLS: CA certificate(s) of the host (PEM)"
    ),
]
TlsCertOpt = Annotated[
    Path | None,
    typer.Option(
        "--tls-cert", envvar="POSGATE_TERMINAL_TLS_CERT", help="TLS: this terminal's certificate (PEM)"
    ),
]
TlsKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--tls-key", envvar="POSGATE_TERMINAL_TLS_KEY", help="TLS: this terminal's private key (PEM)"
    ),
]
TlsServerNameOpt = Annotated[
    str | None,
    typer.Option(
        "--tls-server-name",
        envvar="POSGATE_TERMINAL_TLS_SERVER_NAME",
        help="TLS: the name the host's certificate must carry [default: --host]",
    ),
]


#: What a command does once connected (and signed in): returns the exit code.
_Session = Callable[[TerminalClient], Awaitable[int]]
#: One transaction sent on a connected client.
_Send = Callable[[TerminalClient], Awaitable[TxnResult]]


@dataclass(frozen=True)
class _Tls:
    """How to connect over TLS: the host's CA (None: the system's), the terminal's certificate and key,
    the name to check on the host's certificate."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None


def _tls(
    tls: bool, ca: Path | None, cert: Path | None, key: Path | None, server_name: str | None
) -> _Tls | None:
    """The TLS options of a command: None for plain TCP (no TLS option given)."""
    if not (tls or ca or cert or key or server_name):
        return None
    return _Tls(ca, cert, key, server_name)


@dataclass(frozen=True)
class _Target:
    """Where a command runs: the host's address, the terminal (its id and state file), the time-out and
    TLS (None: plain TCP)."""

    host: str
    port: int
    state_file: Path | None
    tid: str
    timeout: float
    tls: _Tls | None = None

    @property
    def path(self) -> Path:
        """The state file: `--state-file`, else `posgate-data/terminal-<tid>.json`."""
        if self.state_file is not None:
            return self.state_file
        return DEFAULT_STATE_DIR / f"terminal-{self.tid}.json"


class _CardRead(NamedTuple):
    """The card the cashier presents, the PIN typed (None: no PIN block) and how the card is read."""

    card: CardProfile
    pin: str | None
    entry: str


def _fail(code: int, text: str) -> NoReturn:
    err.print(Text(text))
    raise typer.Exit(code)


def _exit_code(approved: bool) -> int:
    return EXIT_APPROVED if approved else EXIT_DECLINED


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


def _resolve_card(card_ref: str, entry: EntryMode | None, expiry: str | None) -> CardProfile:
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


def _entry(card: CardProfile, entry: EntryMode | None) -> str:
    return entry.value if entry is not None else default_entry(card)


def _amount_or_fail(amount: str) -> int:
    try:
        return parse_amount_fen(amount)
    except ValueError as exc:
        _fail(EXIT_USAGE, str(exc))


def _check_rrn(rrn: str) -> None:
    if not _RRN.fullmatch(rrn):
        _fail(EXIT_USAGE, f"RRN must be 12 letters or digits, got {rrn!r}")


def _check_mmdd(date: str | None) -> None:
    if date is not None and not _MMDD.fullmatch(date):
        _fail(EXIT_USAGE, f"--original-date must be MMDD, got {date!r}")


def _card_of_original(
    state: TerminalState, rrn: str, card_ref: str | None, entry: EntryMode | None, expiry: str | None
) -> CardProfile:
    """The card given with --card, else the card of the journal entry with that RRN (a demo card)."""
    if card_ref is not None:
        return _resolve_card(card_ref, entry, expiry)
    for record in reversed(state.journal):
        if record.rrn == rrn:
            pan = open_pan(state.journal_key, record.pan_sealed, state.tid)
            try:
                return _resolve_card(pan, entry, expiry)
            except ConfigError:
                raise ConfigError(f"the card of RRN {rrn} is not a demo card: give --card") from None
    raise UnknownOriginal(
        f"no transaction with RRN {rrn} in the journal of terminal {state.tid}: give --card"
    )


def _resolve_pin(card: CardProfile, pin: str | None, no_pin: bool) -> str | None:
    if no_pin:
        return None
    pin = card.default_pin if pin is None else pin
    if not _PIN.fullmatch(pin):
        raise ConfigError("--pin must be 4 to 12 digits")
    return pin


def _read_card(
    card_ref: str, pin: str | None, no_pin: bool, entry: EntryMode | None, expiry: str | None
) -> _CardRead:
    """The card of --card and the PIN of --pin / --no-pin; a bad one exits 2."""
    try:
        card = _resolve_card(card_ref, entry, expiry)
        typed_pin = _resolve_pin(card, pin, no_pin)
    except PosgateError as exc:
        _fail(EXIT_USAGE, str(exc))
    return _CardRead(card, typed_pin, _entry(card, entry))


def _read_original_card(
    target: _Target, rrn: str, card_ref: str | None, entry: EntryMode | None, expiry: str | None
) -> _CardRead:
    """The card of a transaction on the original with this RRN: --card, else the original's (from the
    journal); no PIN. A bad RRN or card, or an RRN the journal does not hold without --card, exits 2."""
    _check_rrn(rrn)
    try:
        state = _load_state(target.path, target.tid)
        card = _card_of_original(state, rrn, card_ref, entry, expiry)
    except PosgateError as exc:
        _fail(EXIT_USAGE, str(exc))
    return _CardRead(card, None, _entry(card, entry))


def _print_result(result: TxnResult, state: TerminalState) -> int:
    receipt = format_receipt(result, _merchant_name(state.mid), state.tid, state.mid, datetime.now())
    out.print(Text(receipt))
    return _exit_code(result.approved)


def _print_refusal(result: TxnResult) -> None:
    err.print(Text(f"sign-in refused: {result.response_code} {result.response_text}"))


# ---------------------------------------------------------------------------------------------- running


def _run(target: _Target, action: Callable[[TerminalState], Coroutine[Any, Any, int]]) -> NoReturn:
    """Load the state, run `action`, save the state whatever happened, map errors to exit codes."""
    path = target.path
    try:
        state = _load_state(path, target.tid)
    except PosgateError as exc:
        _fail(EXIT_USAGE, str(exc))
    try:
        code = asyncio.run(action(state))
    except (TerminalConnectionError, TerminalTimeout) as exc:
        _fail(EXIT_CONNECTION, str(exc))
    except UnknownOriginal as exc:
        _fail(EXIT_USAGE, str(exc))
    except (NotSignedIn, NothingToReverse, SecurityError, TerminalError) as exc:
        _fail(EXIT_DECLINED, str(exc))
    except (EncodeError, ConfigError) as exc:
        _fail(EXIT_USAGE, str(exc))
    except PosgateError as exc:
        _fail(EXIT_DECLINED, str(exc))
    finally:
        state.save(path)
    raise typer.Exit(code)


async def _connected(target: _Target, state: TerminalState, session: _Session, sign_in: bool = True) -> int:
    """Connect, sign in first when `sign_in` and the terminal has no working keys, run the session."""
    context = None
    if target.tls is not None:
        context = client_context(target.tls.ca, target.tls.cert, target.tls.key)
    server_name = target.tls.server_name if target.tls is not None else None
    client = TerminalClient(
        target.host, target.port, state, target.timeout, tls=context, server_name=server_name
    )
    async with client:
        if sign_in and not await _signed_in(client):
            return EXIT_DECLINED
        return await session(client)


def _run_command(target: _Target, session: _Session, *, sign_in: bool = True) -> NoReturn:
    """What every command does around its session: open the state, connect, sign in if needed (unless
    `sign_in` is False: the command signs in by itself or needs no keys), save, exit with the code."""
    _run(target, lambda state: _connected(target, state, session, sign_in))


async def _signed_in(client: TerminalClient) -> bool:
    """Sign in if the terminal has no working keys; False (after printing why) if the host refused."""
    result = await PosPolicy(client).ensure_signed_in()
    if result is not None and not result.approved:
        _print_refusal(result)
        return False
    return True


def _print_reversal(reversal: TxnResult | None, error: TerminalError | None) -> None:
    if error is not None:
        err.print(Text(f"reversal not completed ({error}); run `posgate terminal reverse` again"))
    elif reversal is not None:
        err.print(Text(f"reversal: {reversal.response_code} {reversal.response_text}"))


def _transaction(kind: str, send: _Send) -> _Session:
    """The session of one transaction of `kind` under the POS policy (`policy.PosPolicy`: sent again after
    a sign-in if the host asks for one, reversed when no response came or the approval's MAC / ARPC fails,
    where `kind` is reversible): print what the policy did and the receipt; exit by the response."""

    async def session(client: TerminalClient) -> int:
        outcome = await PosPolicy(client).transact(kind, lambda: send(client))
        if outcome.timeout is not None:
            if outcome.reversal_reason is not None:
                err.print(Text(f"{outcome.timeout}; reversing it ({outcome.reversal_reason})"))
                _print_reversal(outcome.reversal, outcome.reversal_error)
            raise outcome.timeout
        result = outcome.result
        assert result is not None
        if outcome.reversal_reason is not None:
            what = "MAC" if result.mac_ok is False else "ARPC"
            err.print(
                Text(f"the approval's {what} does not verify: reversing it ({outcome.reversal_reason})")
            )
            _print_reversal(outcome.reversal, outcome.reversal_error)
        return _print_result(result, client.state)

    return session


# ---------------------------------------------------------------------------------------------- commands
# In the order `posgate terminal --help` lists them. Commands that take the same options are made by one
# factory each (`_network_command`, `_amount_command`, `_void_command`) and registered with their help.


@app.command("sign-in")
def sign_in_command(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 5000,
    state_file: StateFileOpt = None,
    tid: TidOpt = DEMO_TID,
    with_tdk: Annotated[bool, typer.Option("--with-tdk", help="also ask for a track data key")] = False,
    timeout: TimeoutOpt = 10.0,
    tls: TlsOpt = False,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    tls_server_name: TlsServerNameOpt = None,
) -> None:
    """Sign in (0800) and store the new working keys."""

    async def session(client: TerminalClient) -> int:
        result = await client.sign_in(with_tdk=with_tdk)
        if not result.approved:
            _print_refusal(result)
            return EXIT_DECLINED
        state = client.state
        roles = (("PIK", state.pik_hex), ("MAK", state.mak_hex), ("TDK", state.tdk_hex))
        keys = ", ".join(f"{role} KCV {kcv(bytes.fromhex(key))}" for role, key in roles if key)
        out.print(Text(f"terminal {state.tid} signed in: {keys}"))
        return EXIT_APPROVED

    _run_command(
        _Target(host, port, state_file, tid, timeout, _tls(tls, tls_ca, tls_cert, tls_key, tls_server_name)),
        session,
        sign_in=False,
    )


def _network_command(send: _Send, line: Callable[[TxnResult], str]) -> Callable[..., None]:
    """A network management command (sign-out, echo): send it (no sign-in first), print `line` of the
    response; exit by the response."""

    async def session(client: TerminalClient) -> int:
        result = await send(client)
        out.print(Text(line(result)))
        return _exit_code(result.approved)

    def command(
        host: HostOpt = "127.0.0.1",
        port: PortOpt = 5000,
        state_file: StateFileOpt = None,
        tid: TidOpt = DEMO_TID,
        timeout: TimeoutOpt = 10.0,
        tls: TlsOpt = False,
        tls_ca: TlsCaOpt = None,
        tls_cert: TlsCertOpt = None,
        tls_key: TlsKeyOpt = None,
        tls_server_name: TlsServerNameOpt = None,
    ) -> None:
        _run_command(
            _Target(
                host, port, state_file, tid, timeout, _tls(tls, tls_ca, tls_cert, tls_key, tls_server_name)
            ),
            session,
            sign_in=False,
        )

    return command


app.command("sign-out", help="Sign out (0820, 60.3 = 002) and forget the working keys.")(
    _network_command(
        TerminalClient.sign_out, lambda result: f"sign-out: {result.response_code} {result.response_text}"
    )
)
app.command("echo", help="Echo test (0820, 60.3 = 301).")(
    _network_command(
        TerminalClient.echo,
        lambda result: f"echo: {result.response_code} {result.response_text} in {result.elapsed_ms:.1f} ms",
    )
)


@app.command("balance")
def balance_command(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 5000,
    state_file: StateFileOpt = None,
    tid: TidOpt = DEMO_TID,
    card: CardOpt = DEFAULT_CARD,
    pin: PinOpt = None,
    no_pin: NoPinOpt = False,
    entry: EntryOpt = None,
    expiry: ExpiryOpt = None,
    timeout: TimeoutOpt = 10.0,
    tls: TlsOpt = False,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    tls_server_name: TlsServerNameOpt = None,
) -> None:
    """Balance inquiry (0200, 3 = 310000): prints the available amount."""
    read = _read_card(card, pin, no_pin, entry, expiry)
    session = _transaction(BALANCE, lambda client: client.balance(read.card, read.pin, read.entry))
    _run_command(
        _Target(host, port, state_file, tid, timeout, _tls(tls, tls_ca, tls_cert, tls_key, tls_server_name)),
        session,
    )


def _amount_command(
    kind: str, method: Callable[[TerminalClient, CardProfile, str | None, int, str], Awaitable[TxnResult]]
) -> Callable[..., None]:
    """A command that reads a card and sends `method` (`TerminalClient.sale` or `.preauth`, of `kind`) of
    AMOUNT yuan: reversed when no response comes or its approval fails the MAC / ARPC; prints the receipt."""

    def command(
        amount: AmountArg,
        host: HostOpt = "127.0.0.1",
        port: PortOpt = 5000,
        state_file: StateFileOpt = None,
        tid: TidOpt = DEMO_TID,
        card: CardOpt = DEFAULT_CARD,
        pin: PinOpt = None,
        no_pin: NoPinOpt = False,
        entry: EntryOpt = None,
        expiry: ExpiryOpt = None,
        timeout: TimeoutOpt = 10.0,
        tls: TlsOpt = False,
        tls_ca: TlsCaOpt = None,
        tls_cert: TlsCertOpt = None,
        tls_key: TlsKeyOpt = None,
        tls_server_name: TlsServerNameOpt = None,
    ) -> None:
        amount_fen = _amount_or_fail(amount)
        read = _read_card(card, pin, no_pin, entry, expiry)
        session = _transaction(
            kind, lambda client: method(client, read.card, read.pin, amount_fen, read.entry)
        )
        _run_command(
            _Target(
                host, port, state_file, tid, timeout, _tls(tls, tls_ca, tls_cert, tls_key, tls_server_name)
            ),
            session,
        )

    return command


app.command("sale", help="Sale (0200, 3 = 000000) of AMOUNT yuan: prints the receipt.")(
    _amount_command(SALE, TerminalClient.sale)
)
app.command(
    "preauth",
    help="Pre-authorization (0100, 3 = 030000) of AMOUNT yuan: the issuer holds it until completion or void.",
)(_amount_command(PREAUTH, TerminalClient.preauth))


def _void_command(kind: str, method: Callable[..., Awaitable[TxnResult]]) -> Callable[..., None]:
    """A command that voids the original with this RRN by `method` (`TerminalClient.void`, `.preauth_void`
    or `.complete_void`, of `kind`), for its full amount, with its card unless --card says otherwise."""

    def command(
        rrn: RrnArg,
        host: HostOpt = "127.0.0.1",
        port: PortOpt = 5000,
        state_file: StateFileOpt = None,
        tid: TidOpt = DEMO_TID,
        card: OriginalCardOpt = None,
        entry: EntryOpt = None,
        expiry: ExpiryOpt = None,
        timeout: TimeoutOpt = 10.0,
        tls: TlsOpt = False,
        tls_ca: TlsCaOpt = None,
        tls_cert: TlsCertOpt = None,
        tls_key: TlsKeyOpt = None,
        tls_server_name: TlsServerNameOpt = None,
    ) -> None:
        target = _Target(
            host, port, state_file, tid, timeout, _tls(tls, tls_ca, tls_cert, tls_key, tls_server_name)
        )
        read = _read_original_card(target, rrn, card, entry, expiry)
        _run_command(
            target, _transaction(kind, lambda client: method(client, rrn, read.card, entry=read.entry))
        )

    return command


app.command(
    "void", help="Void (0200, 3 = 200000) of the sale with this RRN, for its full amount, in the open batch."
)(_void_command(VOID, TerminalClient.void))


@app.command("refund")
def refund_command(
    rrn: RrnArg,
    amount: AmountArg,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 5000,
    state_file: StateFileOpt = None,
    tid: TidOpt = DEMO_TID,
    card: OriginalCardOpt = None,
    entry: EntryOpt = None,
    expiry: ExpiryOpt = None,
    original_date: OriginalDateOpt = None,
    timeout: TimeoutOpt = 10.0,
    tls: TlsOpt = False,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    tls_server_name: TlsServerNameOpt = None,
) -> None:
    """Refund (0220, 3 = 200000) of AMOUNT yuan (partial allowed) of the sale with this RRN."""
    amount_fen = _amount_or_fail(amount)
    _check_mmdd(original_date)
    target = _Target(
        host, port, state_file, tid, timeout, _tls(tls, tls_ca, tls_cert, tls_key, tls_server_name)
    )
    read = _read_original_card(target, rrn, card, entry, expiry)
    session = _transaction(  # never reversed: a refund is an advice
        REFUND, lambda client: client.refund(rrn, read.card, amount_fen, original_date, entry=read.entry)
    )
    _run_command(target, session)


@app.command("complete")
def complete_command(
    rrn: RrnArg,
    amount: AmountArg,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 5000,
    state_file: StateFileOpt = None,
    tid: TidOpt = DEMO_TID,
    card: OriginalCardOpt = None,
    entry: EntryOpt = None,
    expiry: ExpiryOpt = None,
    auth_code: Annotated[
        str | None, typer.Option("--auth-code", help="the pre-authorization's code, when not in the journal")
    ] = None,
    original_date: OriginalDateOpt = None,
    timeout: TimeoutOpt = 10.0,
    tls: TlsOpt = False,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    tls_server_name: TlsServerNameOpt = None,
) -> None:
    """Completion (0200, 3 = 000000, 25 = 06) of AMOUNT yuan (up to 115 %) of the pre-authorization RRN."""
    amount_fen = _amount_or_fail(amount)
    _check_mmdd(original_date)
    target = _Target(
        host, port, state_file, tid, timeout, _tls(tls, tls_ca, tls_cert, tls_key, tls_server_name)
    )
    read = _read_original_card(target, rrn, card, entry, expiry)
    session = _transaction(
        COMPLETION,
        lambda client: client.complete(
            rrn, read.card, amount_fen, entry=read.entry, auth_code=auth_code, original_date=original_date
        ),
    )
    _run_command(target, session)


app.command(
    "preauth-void",
    help="Pre-authorization void (0100, 3 = 200000): releases the hold of the pre-authorization RRN.",
)(_void_command(PREAUTH_VOID, TerminalClient.preauth_void))
app.command(
    "complete-void", help="Completion void (0200, 3 = 200000, 25 = 06) of the completion with this RRN."
)(_void_command(COMPLETION_VOID, TerminalClient.complete_void))


def _print_settlement(result: SettlementResult) -> None:
    totals = result.totals
    out.print(
        Text(
            f"batch {result.batch}: debit {totals.debit_count} / CNY {yuan(totals.debit_fen)}, "
            f"credit {totals.credit_count} / CNY {yuan(totals.credit_fen)}"
        )
    )
    if not result.settled:
        last = result.responses[-1] if result.responses else None
        why = f"{last.mti} {last.response_code} {last.response_text}" if last else "no answer"
        out.print(Text(f"settlement not completed ({why}); the batch stays open"))
    elif result.balanced:
        out.print(Text("settlement balanced"))
    else:
        out.print(Text(f"settlement unbalanced: {result.uploaded} records uploaded, batch closed"))


@app.command("settle")
def settle_command(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 5000,
    state_file: StateFileOpt = None,
    tid: TidOpt = DEMO_TID,
    timeout: TimeoutOpt = 10.0,
    tls: TlsOpt = False,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    tls_server_name: TlsServerNameOpt = None,
) -> None:
    """Settlement (0500) of the open batch; batch upload (0320) when the host's totals differ. Exit 0 when
    the batch closed (balanced, or reconciled by the upload)."""

    async def session(client: TerminalClient) -> int:
        outcome = await PosPolicy(client).settle()
        if outcome.reversal is not None or outcome.reversal_error is not None:
            _print_reversal(outcome.reversal, outcome.reversal_error)
        if outcome.pending is not None:
            raise outcome.pending
        if outcome.sign_in is not None and not outcome.sign_in.approved:
            _print_refusal(outcome.sign_in)
        assert outcome.result is not None
        _print_settlement(outcome.result)
        return _exit_code(outcome.result.settled)

    _run_command(
        _Target(host, port, state_file, tid, timeout, _tls(tls, tls_ca, tls_cert, tls_key, tls_server_name)),
        session,
    )


def _print_day(report: DayReport) -> None:
    table = Table(title=f"trading day: {report.transactions} transactions")
    table.add_column("kind")
    table.add_column("code")
    table.add_column("meaning")
    table.add_column("count", justify="right")
    for kind, code, count in report.rows():
        meaning = response_text(code.rstrip("!")) if code[:2].isalnum() and len(code.rstrip("!")) == 2 else ""
        if code.endswith("!"):
            meaning += " (MAC/ARPC failed: reversed)"
        table.add_row(kind, code, meaning, str(count))
    out.print(table)
    for result in report.settlements:
        _print_settlement(result)
    cards = Table(title="expected issuer-side effect of the day")
    cards.add_column("card")
    cards.add_column("posted (CNY)", justify="right")
    cards.add_column("held (CNY)", justify="right")
    for card, effect in report.effect_fen.items():
        cards.add_row(card.masked_pan, yuan(effect), yuan(report.held_fen.get(card, 0)))
    out.print(cards)
    if report.unresolved:
        out.print(Text(f"{report.unresolved} transaction(s) could not be reversed: run `reverse` again"))


@app.command("day")
def day_command(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 5000,
    state_file: StateFileOpt = None,
    tid: TidOpt = DEMO_TID,
    transactions: Annotated[
        int, typer.Option("--transactions", min=1, max=100_000, help="transactions to play")
    ] = 100,
    seed: Annotated[
        int | None, typer.Option("--seed", help="random seed (the same seed replays the day)")
    ] = None,
    cards: Annotated[
        str, typer.Option("--cards", help="comma-separated demo cards (PAN or profile)")
    ] = DEFAULT_DAY_CARDS,
    batch_limit: Annotated[
        int, typer.Option("--batch-limit", min=1, max=999, help="settle when the batch holds this many")
    ] = 500,
    timeout: TimeoutOpt = 10.0,
    tls: TlsOpt = False,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    tls_server_name: TlsServerNameOpt = None,
) -> None:
    """Play a realistic trading day on this terminal (sales, declines, voids, refunds, pre-authorizations
    and completions, reversals), then settle; prints a summary. Exit 0 when the settlement balanced.
    The day stays under the host's default risk rules: a card rests after 4 purchases in 10 minutes
    (its steps become balance inquiries), and it plans few declines (docs/risk.md)."""
    try:
        profiles = [demo_card(ref.strip()) for ref in cards.split(",") if ref.strip()]
    except PosgateError as exc:
        _fail(EXIT_USAGE, str(exc))
    if not profiles:
        _fail(EXIT_USAGE, "--cards names no card")
    rng = random.Random(seed)

    async def session(client: TerminalClient) -> int:
        report = await play_day(client, profiles, transactions, rng, batch_limit=batch_limit)
        _print_day(report)
        return _exit_code(report.balanced)

    _run_command(
        _Target(host, port, state_file, tid, timeout, _tls(tls, tls_ca, tls_cert, tls_key, tls_server_name)),
        session,
        sign_in=False,
    )


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
    tls: TlsOpt = False,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    tls_server_name: TlsServerNameOpt = None,
) -> None:
    """Reverse the terminal's last reversible transaction (0400, same STAN)."""
    target = _Target(
        host, port, state_file, tid, timeout, _tls(tls, tls_ca, tls_cert, tls_key, tls_server_name)
    )
    session = _transaction("reversal", lambda client: client.reverse_last(reason))

    async def action(state: TerminalState) -> int:
        if state.last is None:  # before connecting: nothing to send
            raise NothingToReverse(f"terminal {state.tid} has no transaction to reverse")
        return await _connected(target, state, session)

    _run(target, action)
