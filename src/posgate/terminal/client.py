"""The terminal simulator's transactions: what a POS terminal sends the acquirer host and what it does
with the answers.

`TerminalClient` builds requests with `messages`, MACs them (field 64 under the MAK, with the terminal's MAC
algorithm from its state: CUP ECB or X9.19) where the MTI needs it, and sends them on its `HostConnection`
(`connection`: one TCP or TLS connection, requests pipelined on it, answers matched by STAN, MTI and TID);
each answer becomes a `TxnResult` whose MAC is checked.

The client changes its `TerminalState` (STAN, working keys, the reversal record `last`, the journal, the
chips' ATCs, the batch) but never writes it: the caller saves it. It never reverses on its own either: a
result with `needs_reversal` (the MAC or the ARPC failed) or a `TerminalTimeout` on a reversible transaction
means the caller must call `reverse_last(result.reversal_reason)` / `reverse_last("98")` — what a terminal
does then is the POS policy (`policy`).

Transactions: `balance`, `sale`, `preauth` (read the card: magstripe, chip, contactless, fallback or manual;
a chip read sends the card's ARQC in field 55), and on an original found in the journal by its RRN: `void`,
`refund`, `preauth_void`, `complete`, `complete_void` (`originals`); then `reverse_last` and `settle`
(`settlement`). Every approved reversible transaction and every approved refund goes into the journal; an
approved reversal marks its original reversed; an approved void marks the sale (or completion) it voids.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Callable
from datetime import datetime
from types import TracebackType

from posgate.cards.pan import mask_pan
from posgate.errors import EncodeError, SecurityError
from posgate.iso8583.codec import encode_pos, encode_pos_with_mac
from posgate.iso8583.framing import MAX_FRAME_BYTES
from posgate.security.pin import encode_pin_block
from posgate.security.pos_mac import pos_mac
from posgate.security.signin import unwrap_working_keys
from posgate.terminal.cards import CardProfile, default_entry
from posgate.terminal.chip import IccRequest, arpc_verdict, icc_request, transaction_tags
from posgate.terminal.connection import HostConnection
from posgate.terminal.errors import (
    NothingToReverse,
    NotSignedIn,
    PendingReversal,
    TerminalConnectionError,
    TerminalError,
    TerminalTimeout,
    UnknownOriginal,
)
from posgate.terminal.journal import (
    COMPLETION,
    COMPLETION_VOID,
    PREAUTH_VOID,
    REFUND,
    VOID,
    JournalEntry,
)
from posgate.terminal.messages import (
    CHIP_ENTRIES,
    MAC_REQUIRED_MTIS,
    REQUEST_HEADER,
    TXN_TYPES,
    Message,
    Original,
    echo_request,
    financial_request,
    last_transaction,
    request_tpdu,
    reversal_request,
    sign_in_request,
    sign_out_request,
)
from posgate.terminal.originals import (
    ON_ORIGINAL,
    book,
    by_reference,
    check_original,
    find,
    original_of,
    unbook,
)
from posgate.terminal.result import SIGN_IN_AGAIN, TxnResult, response_mac_ok, result_from_message
from posgate.terminal.settlement import SettlementResult, settle
from posgate.terminal.state import TerminalState

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
    "default_entry",
]


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
        self.state = state
        self.connection = HostConnection(
            host, port, state.tid, timeout_s, max_frame_bytes, tls=tls, server_name=server_name
        )

    # ------------------------------------------------------------------------------------------ connection

    @property
    def host(self) -> str:
        return self.connection.host

    @host.setter
    def host(self, host: str) -> None:
        """Where the next `connect` goes (a load balancer's next node)."""
        self.connection.host = host

    @property
    def port(self) -> int:
        return self.connection.port

    @port.setter
    def port(self, port: int) -> None:
        self.connection.port = port

    @property
    def timeout_s(self) -> float:
        return self.connection.timeout_s

    @timeout_s.setter
    def timeout_s(self, timeout_s: float) -> None:
        self.connection.timeout_s = timeout_s

    @property
    def address(self) -> str:
        return self.connection.address

    @property
    def connected(self) -> bool:
        return self.connection.connected

    async def connect(self) -> None:
        """Open the connection; `TerminalConnectionError` with a one-line reason if it cannot."""
        await self.connection.connect()

    async def close(self) -> None:
        """Close the connection; requests still waiting fail with `TerminalConnectionError`."""
        await self.connection.close()

    async def __aenter__(self) -> TerminalClient:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------------------------------ exchange

    def _encode(self, msg: Message) -> bytes:
        mti = msg["t"]
        mak, algorithm = self.state.mak, self.state.mac
        if mti in MAC_REQUIRED_MTIS:
            if mak is None:
                raise NotSignedIn(f"terminal {self.state.tid} has no MAK: sign in before sending {mti}")
            return encode_pos_with_mac(msg, lambda data: pos_mac(algorithm, mak, data))
        return encode_pos(msg)

    async def exchange(self, msg: Message) -> TxnResult:
        """Send one request (MACed when its MTI needs it) and wait for its response.

        Raises `TerminalTimeout` after `timeout_s`, `TerminalConnectionError` if the connection is lost,
        `NotSignedIn` if a MAC is needed and there is no MAK, `EncodeError` for an invalid message.
        """
        payload = self._encode(msg)
        envelope = request_tpdu(self.state.nii) + REQUEST_HEADER
        response, elapsed_s = await self.connection.request(msg, payload, envelope)
        pan = _card_pan(msg)
        result = result_from_message(
            response.fields,
            response_mac_ok(response.payload, response.fields, self.state.mak, self.state.mac),
            elapsed_ms=elapsed_s * 1000,
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
        return await self.connection.send_raw(frame)

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
        """Send `kind` on the original with this RRN (see `originals.ON_ORIGINAL`): the original from the
        journal (its amount unless `amount_fen` is given), else from the references given, where `kind`
        allows it."""
        rule = ON_ORIGINAL[kind]
        journal_entry = find(self.state, rrn, rule.of)
        if journal_entry is None:
            original = by_reference(kind, rrn, auth_code, original_date)
        else:
            check_original(self.state, journal_entry, card, kind)
            original = original_of(journal_entry, original_date if rule.given_date_wins else None)
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
            today = "" if "13" in result.fields else self.clock().strftime("%m%d")
            book(self.state, kind, msg, card, result, original_entry, today)
        return result

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
            unbook(self.state, last)
            if self.state.last is last:
                self.state.last = None
        return result

    async def settle(self) -> SettlementResult:
        """Settle the open batch (`settlement.settle`): 0500 with the journal's totals; on `2` (unbalanced)
        the batch upload and batch end. Raises `PendingReversal` when the last reversible transaction never
        got an answer and was not reversed: `reverse_last("98")` first."""
        return await settle(self)
