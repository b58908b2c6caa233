"""The terminal simulator's asyncio shell: one TCP connection (TLS when given a context) to the acquirer
host, requests pipelined on it.

`TerminalClient` builds requests with `messages`, MACs them (field 64 under the MAK, with the terminal's MAC
algorithm from its state: CUP ECB or X9.19) where the MTI needs it, frames them (TPDU, header, length) and
sends them. A single reader task cuts the byte stream into frames and hands each response to the request
waiting for it, matched by field 11 (STAN), the response MTI and field 41 (TID) — so several tasks may have
requests in flight at once and the host may answer out of order. Frames that match nothing (late answers,
answers to `send_raw`) go to a small queue that `send_raw` reads.

The client changes its `TerminalState` (STAN, working keys, the reversal record `last`, the journal, the
chips' ATCs, the batch) but never writes it: the caller saves it. It never reverses on its own either: a
result with `needs_reversal` (the MAC or the ARPC failed) or a `TerminalTimeout` on a reversible transaction
means the caller must call `reverse_last(result.reversal_reason)` / `reverse_last("98")`.

Transactions: `balance`, `sale`, `preauth` (read the card: magstripe, chip, contactless, fallback or manual;
a chip read sends the card's ARQC in field 55), and on an original found in the journal by its RRN: `void`,
`refund`, `preauth_void`, `complete`, `complete_void`; then `reverse_last` and `settle` (0500, and on an
unbalanced answer the batch upload and batch end, then the next batch; a transaction still waiting for its
reversal must be reversed first). Every approved reversible
transaction and every approved refund goes into the journal; an approved reversal marks its original
reversed; an approved void marks the sale (or completion) it voids.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType

from posgate.cards.pan import mask_pan
from posgate.errors import DecodeError, EncodeError, FramingError, PosgateError, SecurityError
from posgate.iso8583.codec import decode_pos, encode_pos, encode_pos_with_mac
from posgate.iso8583.framing import MAX_FRAME_BYTES, FrameBuffer, build_pos_frame, split_pos_frame
from posgate.security.pin import encode_pin_block
from posgate.security.pos_mac import pos_mac
from posgate.security.signin import unwrap_working_keys
from posgate.terminal.cards import CardProfile
from posgate.terminal.chip import IccRequest, arpc_verdict, icc_request, transaction_tags
from posgate.terminal.journal import (
    COMPLETION,
    COMPLETION_VOID,
    PREAUTH,
    PREAUTH_VOID,
    REFUND,
    SALE,
    VOID,
    BatchTotals,
    JournalEntry,
    batch_totals,
    is_balanced,
    open_pan,
    seal_pan,
    settlement_codes,
    upload_groups,
)
from posgate.terminal.messages import (
    CHIP_ENTRIES,
    MAC_REQUIRED_MTIS,
    REQUEST_HEADER,
    TXN_TYPES,
    Message,
    Original,
    batch_end_request,
    batch_upload_request,
    echo_request,
    financial_request,
    last_transaction,
    request_tpdu,
    response_mti,
    reversal_request,
    settlement_request,
    sign_in_request,
    sign_out_request,
)
from posgate.terminal.result import SIGN_IN_AGAIN, TxnResult, response_mac_ok, result_from_message
from posgate.terminal.state import LastTransaction, TerminalState

__all__ = [
    "NotSignedIn",
    "NothingToReverse",
    "PendingReversal",
    "SettlementResult",
    "TerminalClient",
    "TerminalConnectionError",
    "TerminalError",
    "TerminalTimeout",
    "TxnResult",
    "UnknownOriginal",
]

log = logging.getLogger(__name__)

_READ_CHUNK = 65536
_UNMATCHED_MAX = 64


class TerminalError(PosgateError):
    """Something kept the terminal from completing an exchange with the host."""


class TerminalConnectionError(TerminalError):
    """The host cannot be reached, or the connection was lost."""


class TerminalTimeout(TerminalError):
    """No response within the time-out. For a sale, the caller must reverse it (reason `98`)."""


class NotSignedIn(TerminalError):
    """The terminal has no working keys yet: sign in first."""


class NothingToReverse(TerminalError):
    """`reverse_last` was called but the state holds no reversible transaction."""


class PendingReversal(TerminalError):
    """The last reversible transaction never got an answer and is not reversed yet: reverse it before
    settling (its batch would close without it)."""


class UnknownOriginal(TerminalError):
    """A void, refund or completion names an RRN the journal does not hold (or no longer can act on)."""


@dataclass
class SettlementResult:
    """What `settle` did. `settled`: the host accepted the settlement (balanced, or the batch upload and batch
    end went through) and the terminal moved to the next batch; `balanced`: the 0510 said `1`; `uploaded`:
    records sent in 0320s; `responses`: every response, 0510 first; `batch`: the batch settled."""

    balanced: bool
    uploaded: int
    responses: list[TxnResult] = field(repr=False)
    settled: bool = False
    batch: str = ""
    totals: BatchTotals = field(default_factory=BatchTotals)

    @property
    def response_code(self) -> str:
        return self.responses[0].response_code if self.responses else ""


@dataclass(frozen=True)
class _Response:
    header: bytes
    payload: bytes
    fields: Message
    received: float


def _reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the host's certificate does not verify ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {(exc.reason or str(exc)).lower().replace('_', ' ')}"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def _card_pan(msg: Message) -> str | None:
    if "2" in msg:
        return msg["2"]
    if "35" in msg:
        return msg["35"].split("D", 1)[0]
    return None


class TerminalClient:
    """A POS terminal connected to the acquirer host. Use `async with TerminalClient(...) as client:`."""

    def __init__(
        self,
        host: str,
        port: int,
        state: TerminalState,
        timeout_s: float = 10.0,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        clock: Callable[[], datetime] = datetime.now,
        tls: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:
        """`clock` gives the terminal's local time (field 55's 9A, the journal's dates). With `tls` (see
        `security.pos_tls.client_context`) the connection is TLS, the host's certificate checked for
        `server_name` (default: `host`)."""
        self.clock = clock
        self.host = host
        self.port = port
        self.tls = tls
        self.server_name = server_name
        self.state = state
        self.timeout_s = timeout_s
        self._max_frame_bytes = max_frame_bytes
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[tuple[str, str], asyncio.Future[_Response]] = {}
        self._unmatched: asyncio.Queue[bytes | None] = asyncio.Queue(_UNMATCHED_MAX)
        self._lost: TerminalConnectionError | None = None

    # ------------------------------------------------------------------------------------------ connection

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._writer is not None and self._lost is None

    async def connect(self) -> None:
        """Open the connection; `TerminalConnectionError` with a one-line reason if it cannot."""
        try:
            if self.tls is None:
                connecting = asyncio.open_connection(self.host, self.port)
            else:
                connecting = asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.server_name or self.host,
                    ssl_handshake_timeout=self.timeout_s,
                )
            self._reader, self._writer = await asyncio.wait_for(connecting, self.timeout_s)
        except TimeoutError:
            raise TerminalConnectionError(
                f"cannot reach posgate host at {self.address}: timed out after {self.timeout_s:g} s"
            ) from None
        except OSError as exc:
            raise TerminalConnectionError(
                f"cannot reach posgate host at {self.address}: {_reason(exc)}"
            ) from None
        self._lost = None
        self._unmatched = asyncio.Queue(_UNMATCHED_MAX)
        self._reader_task = asyncio.create_task(
            self._read_loop(self._reader), name=f"terminal-{self.state.tid}"
        )

    async def close(self) -> None:
        """Close the connection; requests still waiting fail with `TerminalConnectionError`."""
        task, writer = self._reader_task, self._writer
        self._reader_task = self._writer = self._reader = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        self._fail_pending(TerminalConnectionError(f"connection to posgate host at {self.address} closed"))

    async def __aenter__(self) -> TerminalClient:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        frames = FrameBuffer(self._max_frame_bytes)
        reason = "closed by the host"
        if self.tls is not None:  # a host that requires a client certificate closes after the handshake
            reason += " before any answer (over TLS: does it require a client certificate? see --tls-cert)"
        try:
            while data := await reader.read(_READ_CHUNK):
                reason = "closed by the host"
                frames.receive_data(data)
                while (body := frames.next_frame()) is not None:
                    self._dispatch(body)
        except FramingError as exc:
            reason = f"bad frame from the host ({exc})"
        except OSError as exc:
            reason = _reason(exc)
        finally:
            self._lost = TerminalConnectionError(
                f"connection to posgate host at {self.address} lost: {reason}"
            )
            self._fail_pending(self._lost)
            self._offer_unmatched(None)

    def _fail_pending(self, error: Exception) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    def _offer_unmatched(self, body: bytes | None) -> None:
        if self._unmatched.full():
            self._unmatched.get_nowait()  # keep the newest frames
        self._unmatched.put_nowait(body)

    def _dispatch(self, body: bytes) -> None:
        """Hand a frame to the request it answers (same 11, response MTI and 41), else to `send_raw`."""
        received = time.perf_counter()
        try:
            frame = split_pos_frame(body)
            fields = decode_pos(frame.payload)
        except (FramingError, DecodeError) as exc:
            log.warning("terminal %s: undecodable frame from the host: %s", self.state.tid, exc)
            self._offer_unmatched(body)
            return
        stan, mti = fields.get("11", ""), fields.get("t", "")
        key = (stan, mti)
        if key not in self._pending:  # e.g. an error response with another MTI: match on the STAN alone
            same_stan = [k for k in self._pending if k[0] == stan]
            key = same_stan[0] if len(same_stan) == 1 else key
        future = self._pending.get(key)
        if future is None or fields.get("41") != self.state.tid:
            log.info("terminal %s: unmatched %s STAN %s from the host", self.state.tid, mti, stan)
            self._offer_unmatched(body)
            return
        del self._pending[key]
        if not future.done():
            future.set_result(_Response(frame.header, frame.payload, fields, received))

    # ------------------------------------------------------------------------------------------ exchange

    def _encode(self, msg: Message) -> bytes:
        mti = msg["t"]
        mak, algorithm = self.state.mak, self.state.mac
        if mti in MAC_REQUIRED_MTIS:
            if mak is None:
                raise NotSignedIn(f"terminal {self.state.tid} has no MAK: sign in before sending {mti}")
            return encode_pos_with_mac(msg, lambda data: pos_mac(algorithm, mak, data))
        return encode_pos(msg)

    def _writer_or_raise(self) -> asyncio.StreamWriter:
        if self._lost is not None:
            raise self._lost
        if self._writer is None:
            raise TerminalConnectionError(f"not connected to posgate host at {self.address}")
        return self._writer

    async def exchange(self, msg: Message) -> TxnResult:
        """Send one request (MACed when its MTI needs it) and wait for its response.

        Raises `TerminalTimeout` after `timeout_s`, `TerminalConnectionError` if the connection is lost,
        `NotSignedIn` if a MAC is needed and there is no MAK, `EncodeError` for an invalid message.
        """
        payload = self._encode(msg)
        frame = build_pos_frame(request_tpdu(self.state.nii), REQUEST_HEADER, payload)
        writer = self._writer_or_raise()
        key = (msg["11"], response_mti(msg["t"]))
        if key in self._pending:
            raise TerminalError(f"a {msg['t']} with STAN {msg['11']} is already waiting for its response")
        future: asyncio.Future[_Response] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        started = time.perf_counter()
        try:
            writer.write(frame)
            await writer.drain()
            response = await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            raise TerminalTimeout(
                f"no response to {msg['t']} STAN {msg['11']} from {self.address} within {self.timeout_s:g} s"
            ) from None
        except OSError as exc:
            raise await self._lost_because(exc) from None
        finally:
            if self._pending.get(key) is future:
                del self._pending[key]
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: the reader may have failed it while the write failed
            else:
                future.cancel()
        pan = _card_pan(msg)
        result = result_from_message(
            response.fields,
            response_mac_ok(response.payload, response.fields, self.state.mak, self.state.mac),
            elapsed_ms=(response.received - started) * 1000,
            masked_pan=mask_pan(pan) if pan else None,
            sign_in_required=response.header[2] & 0x0F == SIGN_IN_AGAIN,
        )
        if result.amount_fen is None and "4" in msg:
            result.amount_fen = int(msg["4"])
        return result

    async def _lost_because(self, exc: OSError) -> TerminalConnectionError:
        """The error for a write that failed: the reader's reason when it has one (a TLS alert says more
        than the reset that follows it), else the write's own."""
        task = self._reader_task
        if self._lost is None and task is not None and not task.done():
            await asyncio.wait([task], timeout=0.5)
        if self._lost is not None:
            return self._lost
        return TerminalConnectionError(f"connection to posgate host at {self.address} lost: {_reason(exc)}")

    async def send_raw(self, frame: bytes) -> bytes | None:
        """Send `frame` as is (length prefix included) and return the next frame body (without its length
        prefix) that answers no pending request, or None on time-out or when the host closes the connection.
        For tests of the host's handling of bad frames."""
        writer = self._writer_or_raise()
        while not self._unmatched.empty():
            self._unmatched.get_nowait()
        writer.write(frame)
        try:
            await writer.drain()
            return await asyncio.wait_for(self._unmatched.get(), self.timeout_s)
        except (TimeoutError, OSError):
            return None

    # ------------------------------------------------------------------------------------------ transactions

    async def sign_in(self, with_tdk: bool = False) -> TxnResult:
        """0800 sign-in. On `00`, unwrap field 62 with the TMK, check every KCV, keep the keys in the state.

        Raises `SecurityError` if field 62 is missing or a key does not match its check value.
        """
        result = await self.exchange(sign_in_request(self.state, self.state.next_stan(), with_tdk))
        if result.response_code != "00":
            return result
        field62 = result.fields.get("62")
        if not field62:
            raise SecurityError("sign-in response carries no field 62 (working keys)")
        keys = unwrap_working_keys(self.state.tmk, bytes.fromhex(field62))
        if with_tdk and keys.tdk is None:
            raise SecurityError("sign-in response carries no TDK, though 60.3 = 004 asked for one")
        self.state.pik_hex = keys.pik.hex().upper()
        self.state.mak_hex = keys.mak.hex().upper()
        self.state.tdk_hex = keys.tdk.hex().upper() if keys.tdk is not None else None
        return result

    async def sign_out(self) -> TxnResult:
        """0820 sign-out (60.3 = 002); on `00` the working keys are forgotten."""
        result = await self.exchange(sign_out_request(self.state, self.state.next_stan()))
        if result.response_code == "00":
            self.state.clear_keys()
        return result

    async def echo(self) -> TxnResult:
        """0820 echo test (60.3 = 301)."""
        return await self.exchange(echo_request(self.state, self.state.next_stan()))

    def _pin_block_hex(self, card: CardProfile, pin: str | None) -> str | None:
        if pin is None:
            return None
        pik = self.state.pik
        if pik is None:
            raise NotSignedIn(f"terminal {self.state.tid} has no PIK: sign in before taking a PIN")
        return encode_pin_block(pin, card.pan, pik).hex().upper()

    async def balance(
        self,
        card: CardProfile,
        pin: str | None,
        entry: str = "magstripe",
        icc_data_hex: str | None = None,
        *,
        tamper_arqc: bool = False,
    ) -> TxnResult:
        """0200 balance inquiry; `balance_fen` holds the available amount when approved. Not reversible."""
        return await self._transact("balance", card, pin, None, entry, icc_data_hex, tamper_arqc)

    async def sale(
        self,
        card: CardProfile,
        pin: str | None,
        amount_fen: int,
        entry: str = "magstripe",
        icc_data_hex: str | None = None,
        *,
        tamper_arqc: bool = False,
    ) -> TxnResult:
        """0200 sale of `amount_fen`. `state.last` is set before sending (so a time-out can be reversed) and
        completed with the response code, RRN and authorization code.

        With `entry` chip or contactless the card computes its ARQC (field 55; the ATC advances) unless
        `icc_data_hex` gives field 55 as is; `tamper_arqc` flips a bit of the ARQC (the issuer answers `05`).
        """
        return await self._transact("sale", card, pin, amount_fen, entry, icc_data_hex, tamper_arqc)

    async def preauth(
        self,
        card: CardProfile,
        pin: str | None,
        amount_fen: int,
        entry: str = "magstripe",
        icc_data_hex: str | None = None,
        *,
        tamper_arqc: bool = False,
    ) -> TxnResult:
        """0100 pre-authorization: the issuer holds `amount_fen` until a completion or a pre-auth void."""
        return await self._transact("preauth", card, pin, amount_fen, entry, icc_data_hex, tamper_arqc)

    async def void(
        self,
        rrn: str,
        card: CardProfile,
        amount_fen: int | None = None,
        *,
        pin: str | None = None,
        entry: str | None = None,
    ) -> TxnResult:
        """0200 void of the sale with this RRN in the journal (amount, STAN, batch, auth code from there;
        `amount_fen` overrides the amount). Raises `UnknownOriginal` if the journal holds no such sale that
        is neither reversed nor voided, or the card is not the sale's."""
        return await self._on_original(VOID, rrn, card, amount_fen=amount_fen, pin=pin, entry=entry)

    async def refund(
        self,
        rrn: str,
        card: CardProfile,
        amount_fen: int,
        original_date: str | None = None,
        *,
        entry: str | None = None,
    ) -> TxnResult:
        """0220 refund of `amount_fen` (partial allowed) of the sale with this RRN. From the journal when it
        is there (batch, STAN, date; a given `original_date` replaces the date); otherwise (a sale of an
        earlier batch) `original_date` MMDD is needed and 61 carries zeros for the batch and STAN. Not
        reversible; an approved refund counts in credit."""
        return await self._on_original(
            REFUND, rrn, card, amount_fen=amount_fen, entry=entry, original_date=original_date
        )

    async def preauth_void(
        self, rrn: str, card: CardProfile, *, pin: str | None = None, entry: str | None = None
    ) -> TxnResult:
        """0100 void of the pre-authorization with this RRN (its amount, code, batch, STAN and date)."""
        return await self._on_original(PREAUTH_VOID, rrn, card, pin=pin, entry=entry)

    async def complete(
        self,
        rrn: str,
        card: CardProfile,
        amount_fen: int,
        *,
        entry: str | None = None,
        auth_code: str | None = None,
        original_date: str | None = None,
    ) -> TxnResult:
        """0200 completion of `amount_fen` (the host allows up to 115 % of the hold) of the pre-authorization
        with this RRN. From the journal when it is there; otherwise `auth_code` and `original_date` are
        needed (61 then carries zeros for the batch and STAN)."""
        return await self._on_original(
            COMPLETION,
            rrn,
            card,
            amount_fen=amount_fen,
            entry=entry,
            auth_code=auth_code,
            original_date=original_date,
        )

    async def complete_void(
        self, rrn: str, card: CardProfile, *, pin: str | None = None, entry: str | None = None
    ) -> TxnResult:
        """0200 void of the completion with this RRN (its amount, code, batch and STAN)."""
        return await self._on_original(COMPLETION_VOID, rrn, card, pin=pin, entry=entry)

    # ------------------------------------------------------------------------------------------ internals

    async def _on_original(
        self,
        kind: str,
        rrn: str,
        card: CardProfile,
        *,
        amount_fen: int | None = None,
        pin: str | None = None,
        entry: str | None = None,
        auth_code: str | None = None,
        original_date: str | None = None,
    ) -> TxnResult:
        """Send `kind` on the original with this RRN (see `_ON_ORIGINAL`): the original from the journal
        (its amount unless `amount_fen` is given), else from the references given, where `kind` allows it."""
        rule = _ON_ORIGINAL[kind]
        journal_entry = self._find(rrn, rule.of)
        if journal_entry is None:
            original = _by_reference(kind, rrn, auth_code, original_date)
        else:
            self._check_original(journal_entry, card, kind)
            original = _original_of(journal_entry, original_date if rule.given_date_wins else None)
            if amount_fen is None:
                amount_fen = journal_entry.amount_fen
        return await self._transact(
            kind,
            card,
            pin=pin,
            amount_fen=amount_fen,
            entry=entry,
            original=original,
            original_entry=journal_entry,
        )

    def _find(self, rrn: str, kind: str) -> JournalEntry | None:
        for entry in reversed(self.state.journal):
            if entry.rrn == rrn and entry.kind == kind:
                return entry
        return None

    def _check_card(self, entry: JournalEntry, card: CardProfile) -> None:
        if open_pan(self.state.journal_key, entry.pan_sealed, self.state.tid) != card.pan:
            raise UnknownOriginal(f"the card read is not the original's ({entry.masked_pan})")

    def _check_original(self, entry: JournalEntry, card: CardProfile, kind: str) -> None:
        """Raise `UnknownOriginal` when a mark on the original bars `kind` or the card is not its card."""
        rule = _ON_ORIGINAL[kind]
        _check_marks(entry, rule.barred_before_card)
        self._check_card(entry, card)
        _check_marks(entry, rule.barred_after_card)

    def _icc(
        self, kind: str, card: CardProfile, amount_fen: int | None, pin: str | None, tamper: bool
    ) -> IccRequest:
        if card.chip is None:
            raise EncodeError(
                f"field 55: the card {card.masked_pan} has no chip the simulator can read", field=55
            )
        txn_type = TXN_TYPES[kind].icc_type
        assert txn_type is not None
        tags = transaction_tags(
            amount_fen=amount_fen or 0,
            txn_date=self.clock().date(),
            txn_type=txn_type,
            unpredictable_number=secrets.token_bytes(4),
            atc=self.state.next_atc(card.pan),
            pin_entered=pin is not None,
        )
        return icc_request(card.chip, tags, tamper)

    async def _transact(
        self,
        kind: str,
        card: CardProfile,
        pin: str | None = None,
        amount_fen: int | None = None,
        entry: str | None = "magstripe",
        icc_data_hex: str | None = None,
        tamper_arqc: bool = False,
        *,
        original: Original | None = None,
        original_entry: JournalEntry | None = None,
    ) -> TxnResult:
        """Build, send and book one financial transaction of `kind` (see `messages.TXN_TYPES`)."""
        txn = TXN_TYPES[kind]
        entry = entry or default_entry(card)
        pin_block = self._pin_block_hex(card, pin)
        stan = self.state.next_stan()
        icc: IccRequest | None = None
        if txn.icc_type is not None and entry in CHIP_ENTRIES and icc_data_hex is None:
            icc = self._icc(kind, card, amount_fen, pin, tamper_arqc)
            icc_data_hex = icc.field55()
        msg = financial_request(
            kind,
            self.state,
            stan,
            card,
            amount_fen=amount_fen,
            pin_block_hex=pin_block,
            entry=entry,
            icc_data_hex=icc_data_hex,
            original=original,
        )
        record = last_transaction(msg, kind) if txn.reversible else None
        if record is not None or kind == REFUND:
            # the reversal record: the last reversible transaction; a refund against it ends it
            self.state.last = record
        result = await self.exchange(msg)
        result.kind = kind
        if icc is not None:
            result.arpc_ok = arpc_verdict(icc, result.fields.get("55"), result.response_code)
        if record is not None:
            record.response_code = result.response_code
            record.rrn = result.rrn
            record.auth_code = result.auth_code
        if result.approved and (txn.reversible or kind == REFUND):
            self._book(kind, msg, card, result, original_entry)
        return result

    def _book(
        self,
        kind: str,
        msg: Message,
        card: CardProfile,
        result: TxnResult,
        original: JournalEntry | None,
    ) -> None:
        """Journal an approved transaction and mark what it did to its original."""
        date = result.fields.get("13") or self.clock().strftime("%m%d")
        self.state.journal.append(
            JournalEntry(
                kind=kind,
                mti=msg["t"],
                processing_code=msg["3"],
                condition_code=msg["25"],
                entry_mode=msg["22"],
                stan=msg["11"],
                batch=self.state.batch,
                amount_fen=int(msg["4"]),
                rrn=result.rrn,
                auth_code=result.auth_code,
                date=date,
                masked_pan=card.masked_pan,
                pan_sealed=seal_pan(self.state.journal_key, card.pan, self.state.tid),
                original_rrn=msg.get("37"),
            )
        )
        if original is None:
            return
        if kind == REFUND:
            original.refunded_fen += int(msg["4"])
        else:
            setattr(original, _ON_ORIGINAL[kind].mark, True)

    def _unbook(self, last: LastTransaction) -> None:
        """An approved reversal: mark the reversed entry, and undo what it did to its original."""
        for entry in reversed(self.state.journal):
            if (entry.stan, entry.batch, entry.mti, entry.kind) == (
                last.stan,
                last.batch,
                last.mti,
                last.kind,
            ):
                if entry.reversed:
                    return
                entry.reversed = True
                break
        else:
            return
        rule = _ON_ORIGINAL.get(entry.kind)
        if rule is None or not entry.original_rrn or not TXN_TYPES[entry.kind].reversible:
            return
        original = self._find(entry.original_rrn, rule.of)
        if original is not None:
            setattr(original, rule.mark, False)

    async def reverse_last(self, reason: str = "98") -> TxnResult:
        """0400 reversal of `state.last` (same STAN as the original) with field 39 = `reason`.

        On `00` the record is cleared and the journal marks the original reversed (and gives back what it
        did: a reversed void leaves its sale unvoided). Raises `NothingToReverse` when there is none.
        """
        last = self.state.last
        if last is None:
            raise NothingToReverse(f"terminal {self.state.tid} has no transaction to reverse")
        result = await self.exchange(reversal_request(self.state, last, reason))
        result.kind = "reversal"
        if result.approved:
            self._unbook(last)
            if self.state.last is last:
                self.state.last = None
        return result

    # ------------------------------------------------------------------------------------------ settlement

    async def settle(self) -> SettlementResult:
        """Settle the open batch: 0500 with the journal's totals; on `2` (unbalanced) upload every counted
        record (0320, 8 a message, magstripe-read then chip-read) and end the batch (0320, 207). When the
        host accepted it all, the batch advances and its journal is cleared (`settled`). A refused step
        (39 not `00`, or a bad MAC on the 0510) stops there and keeps the batch open.

        Raises `PendingReversal` when the last reversible transaction never got an answer and was not
        reversed: `reverse_last("98")` first.
        """
        last = self.state.last
        if last is not None and last.response_code is None:
            raise PendingReversal(
                f"terminal {self.state.tid}: STAN {last.stan} got no answer and is not reversed yet: "
                "reverse it first"
            )
        batch = self.state.batch
        entries = [entry for entry in self.state.journal if entry.batch == batch]
        totals = batch_totals(entries)
        outcome = SettlementResult(balanced=False, uploaded=0, responses=[], batch=batch, totals=totals)
        result = await self.exchange(settlement_request(self.state, self.state.next_stan(), totals))
        result.kind = "settlement"
        outcome.responses.append(result)
        if not result.approved:
            return outcome
        try:
            codes = settlement_codes(result.fields.get("48"))
        except DecodeError:
            log.warning("terminal %s: 0510 without settlement codes: uploading the batch", self.state.tid)
            codes = ("", "")
        if is_balanced(codes):
            outcome.balanced = outcome.settled = True
            self.state.close_batch()
            return outcome
        for group in upload_groups(entries, self.state.journal_key, self.state.tid):
            upload = await self.exchange(batch_upload_request(self.state, self.state.next_stan(), group))
            upload.kind = "batch_upload"
            outcome.responses.append(upload)
            if upload.response_code != "00":
                return outcome
            outcome.uploaded += len(group.records)
        end = await self.exchange(batch_end_request(self.state, self.state.next_stan(), outcome.uploaded))
        end.kind = "batch_end"
        outcome.responses.append(end)
        if end.response_code == "00":
            outcome.settled = True
            self.state.close_batch()
        return outcome


def default_entry(card: CardProfile) -> str:
    """How the terminal reads a card when the caller does not say: the chip when the simulator can read it,
    else the stripe, else the keypad."""
    if card.chip is not None and card.track2:
        return "chip"
    return "magstripe" if card.track2 else "manual"


@dataclass(frozen=True)
class _OnOriginalRule:
    """What a transaction on an original needs of it. `of`: the original's kind in the journal; `mark`: what
    an approval marks on the original (a flag, which a reversal clears; a refund adds its amount);
    `barred_before_card` / `barred_after_card`: the marks on the original that bar the transaction, each with
    its message, checked in this order around the card check; `missing`: the message when the journal does
    not hold the original (and the caller gave no references); `given_date_wins`: a given original date
    replaces the journal's. Messages are templates of `{rrn}`."""

    of: str
    mark: str
    missing: str
    barred_before_card: tuple[tuple[str, str], ...] = ()
    barred_after_card: tuple[tuple[str, str], ...] = ()
    given_date_wins: bool = False


def _is(name: str, *marks: str, already: bool = False) -> tuple[tuple[str, str], ...]:
    """Bars for `marks` (flags of a journal entry) with the message "the <name> with RRN … is [already] …"."""
    return tuple((mark, f"the {name} with RRN {{rrn}} is {'already ' * already}{mark}") for mark in marks)


_ON_ORIGINAL: dict[str, _OnOriginalRule] = {
    VOID: _OnOriginalRule(
        of=SALE,
        mark="voided",
        missing="no sale with RRN {rrn} in the journal to void",
        barred_before_card=_is("sale", "reversed", "voided", already=True),
        barred_after_card=(
            ("refunded_fen", "the sale with RRN {rrn} is partly refunded: it cannot be voided"),
        ),
    ),
    REFUND: _OnOriginalRule(
        of=SALE,
        mark="refunded_fen",
        missing="no sale with RRN {rrn} in the journal: give the original date (MMDD) to refund it",
        barred_after_card=_is("sale", "reversed", "voided"),
        given_date_wins=True,
    ),
    PREAUTH_VOID: _OnOriginalRule(
        of=PREAUTH,
        mark="voided",
        missing="no preauth with RRN {rrn} in the journal to void",
        barred_before_card=_is("preauth", "reversed", "voided", already=True),
        barred_after_card=(
            ("completed", "the pre-authorization with RRN {rrn} is completed: void the completion"),
        ),
    ),
    COMPLETION: _OnOriginalRule(
        of=PREAUTH,
        mark="completed",
        missing="no pre-authorization with RRN {rrn} in the journal: give its authorization code and date",
        barred_after_card=_is("pre-authorization", "reversed", "voided", "completed"),
    ),
    COMPLETION_VOID: _OnOriginalRule(
        of=COMPLETION,
        mark="voided",
        missing="no completion with RRN {rrn} in the journal to void",
        barred_before_card=_is("completion", "reversed", "voided", already=True),
    ),
}


def _check_marks(entry: JournalEntry, barred: tuple[tuple[str, str], ...]) -> None:
    for mark, message in barred:
        if getattr(entry, mark):
            raise UnknownOriginal(message.format(rrn=entry.rrn))


def _by_reference(kind: str, rrn: str, auth_code: str | None, original_date: str | None) -> Original:
    """An original the journal does not hold (one of an earlier batch), from the references the caller
    gives: only for a kind whose 61 carries the date (refund, completion), with zeros for batch and STAN."""
    txn = TXN_TYPES[kind]
    given = original_date is not None and (auth_code is not None or not txn.original_auth_code)
    if txn.original_date != "required" or not given:
        raise UnknownOriginal(_ON_ORIGINAL[kind].missing.format(rrn=rrn))
    return Original(rrn, "000000", "000000", auth_code, original_date)


def _original_of(entry: JournalEntry, date: str | None = None) -> Original:
    """The journal entry as an original; `date` replaces its date when given."""
    return Original(
        entry.rrn or "", entry.batch, entry.stan, entry.auth_code, entry.date if date is None else date
    )
