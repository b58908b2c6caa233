"""The terminal simulator's asyncio shell: one TCP connection to the acquirer host, requests pipelined on it.

`TerminalClient` builds requests with `messages`, MACs them (field 64, CUP ECB under the MAK) where the MTI
needs it, frames them (TPDU, header, length) and sends them. A single reader task cuts the byte stream into
frames and hands each response to the request waiting for it, matched by field 11 (STAN), the response MTI and
field 41 (TID) — so several tasks may have requests in flight at once and the host may answer out of order.
Frames that match nothing (late answers, answers to `send_raw`) go to a small queue that `send_raw` reads.

The client changes its `TerminalState` (STAN, working keys, the reversal record `last`) but never writes it:
the caller saves it. It never reverses on its own either: a response with `mac_ok = False` or a
`TerminalTimeout` on a sale means the caller must call `reverse_last("A0")` / `reverse_last("98")`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import time
from dataclasses import dataclass
from types import TracebackType

from posgate.cards.pan import mask_pan
from posgate.errors import DecodeError, FramingError, PosgateError, SecurityError
from posgate.iso8583.codec import decode_pos, encode_pos, encode_pos_with_mac
from posgate.iso8583.framing import MAX_FRAME_BYTES, FrameBuffer, build_pos_frame, split_pos_frame
from posgate.security.pin import encode_pin_block
from posgate.security.pos_mac import cup_ecb_mac
from posgate.security.signin import unwrap_working_keys
from posgate.terminal.cards import CardProfile
from posgate.terminal.messages import (
    MAC_OPTIONAL_MTIS,
    MAC_REQUIRED_MTIS,
    REQUEST_HEADER,
    Message,
    balance_request,
    echo_request,
    last_transaction,
    request_tpdu,
    response_mti,
    reversal_request,
    sale_request,
    sign_in_request,
    sign_out_request,
)
from posgate.terminal.result import SIGN_IN_AGAIN, TxnResult, response_mac_ok, result_from_message
from posgate.terminal.state import TerminalState

__all__ = [
    "NotSignedIn",
    "NothingToReverse",
    "TerminalClient",
    "TerminalConnectionError",
    "TerminalError",
    "TerminalTimeout",
    "TxnResult",
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


@dataclass(frozen=True)
class _Response:
    header: bytes
    payload: bytes
    fields: Message
    received: float


def _reason(exc: OSError) -> str:
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
    ) -> None:
        self.host = host
        self.port = port
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
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout_s
            )
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
        try:
            while data := await reader.read(_READ_CHUNK):
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
        mak = self.state.mak
        if mti in MAC_REQUIRED_MTIS or (mti in MAC_OPTIONAL_MTIS and mak is not None):
            if mak is None:
                raise NotSignedIn(f"terminal {self.state.tid} has no MAK: sign in before sending {mti}")
            return encode_pos_with_mac(msg, lambda data: cup_ecb_mac(mak, data))
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
            raise TerminalConnectionError(
                f"connection to posgate host at {self.address} lost: {_reason(exc)}"
            ) from None
        finally:
            if self._pending.get(key) is future:
                del self._pending[key]
        pan = _card_pan(msg)
        result = result_from_message(
            response.fields,
            response_mac_ok(response.payload, response.fields, self.state.mak),
            elapsed_ms=(response.received - started) * 1000,
            masked_pan=mask_pan(pan) if pan else None,
            sign_in_required=response.header[2] & 0x0F == SIGN_IN_AGAIN,
        )
        if result.amount_fen is None and "4" in msg:
            result.amount_fen = int(msg["4"])
        return result

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
        self, card: CardProfile, pin: str | None, entry: str = "magstripe", icc_data_hex: str | None = None
    ) -> TxnResult:
        """0200 balance inquiry; `balance_fen` holds the available amount when approved. Not reversible."""
        pin_block = self._pin_block_hex(card, pin)
        msg = balance_request(self.state, self.state.next_stan(), card, pin_block, entry, icc_data_hex)
        return await self.exchange(msg)

    async def sale(
        self,
        card: CardProfile,
        pin: str | None,
        amount_fen: int,
        entry: str = "magstripe",
        icc_data_hex: str | None = None,
    ) -> TxnResult:
        """0200 sale of `amount_fen`. `state.last` is set before sending (so a time-out can be reversed) and
        completed with the response code, RRN and authorization code."""
        pin_block = self._pin_block_hex(card, pin)
        msg = sale_request(
            self.state, self.state.next_stan(), card, amount_fen, pin_block, entry, icc_data_hex
        )
        record = last_transaction(msg)
        self.state.last = record
        result = await self.exchange(msg)
        record.response_code = result.response_code
        record.rrn = result.rrn
        record.auth_code = result.auth_code
        return result

    async def reverse_last(self, reason: str = "98") -> TxnResult:
        """0400 reversal of `state.last` (same STAN as the original) with field 39 = `reason`.

        On `00` the record is cleared. Raises `NothingToReverse` when there is none.
        """
        last = self.state.last
        if last is None:
            raise NothingToReverse(f"terminal {self.state.tid} has no transaction to reverse")
        result = await self.exchange(reversal_request(self.state, last, reason))
        if result.approved and self.state.last is last:
            self.state.last = None
        return result
