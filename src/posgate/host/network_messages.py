"""Network-dialect requests the host sends to issuers (network-8583.md), built from what the pipeline
knows. Pure: the clock and the card data come in as arguments."""

from __future__ import annotations

from posgate.host.context import TxnContext

Message = dict[str, str]

# POS fields passed to the issuer unchanged when present (38: the original's authorization code)
_PASSED = ("3", "4", "22", "23", "25", "38", "41", "42", "49", "55")


def acquirer_field32(acquirer_id: str) -> str:
    return acquirer_id


def original_data(mti: str, network_stan: str, transmission_dt: str, acquirer_id: str) -> str:
    """Field 90: original MTI n4 + STAN n6 + transmission date-time n10 + acquirer n11 + forwarder n11.

    >>> original_data("0200", "000042", "1126101500", "49990000")
    '020000004211261015000004999000000000000000'
    """
    return mti + network_stan + transmission_dt + f"{int(acquirer_id):011d}" + "0" * 11


def authorization_request(ctx: TxnContext, acquirer_id: str) -> Message:
    """0100/0200 to the issuer for a POS request, with the host's own STAN and RRN."""
    assert ctx.card is not None and ctx.network_stan and ctx.rrn and ctx.transmission_dt
    request = ctx.request
    msg: Message = {
        "t": request["t"],
        "2": ctx.card.pan,
        "7": ctx.transmission_dt,
        "11": ctx.network_stan,
        "12": ctx.local_now.strftime("%H%M%S"),
        "13": ctx.local_now.strftime("%m%d"),
        "32": acquirer_field32(acquirer_id),
        "37": ctx.rrn,
    }
    for field in _PASSED:
        if field in request:
            msg[field] = request[field]
    if ctx.card.expiry:
        msg["14"] = ctx.card.expiry
    if ctx.card.track2:
        msg["35"] = ctx.card.track2.replace("D", "=")
    if ctx.pin_block_zpk is not None:
        msg["52"] = ctx.pin_block_zpk.hex().upper()
    original = ctx.original
    if original is not None and original.transmission_dt and original.network_stan:
        msg["90"] = original_data(original.mti, original.network_stan, original.transmission_dt, acquirer_id)
    return msg


def advice_request(
    *,
    pan: str | None,
    processing_code: str,
    condition_code: str | None,
    entry_mode: str | None,
    amount_fen: int,
    currency: str,
    network_stan: str,
    transmission_dt: str,
    rrn: str,
    auth_code: str | None,
    tid: str,
    mid: str,
    acquirer_id: str,
    original: tuple[str, str, str] | None,
) -> Message:
    """0220 advice of something the host already decided (a refund, a stand-in approval). The same STAN
    and date-time on every retry — the transaction's own: the issuer books an advice once."""
    msg: Message = {
        "t": "0220",
        "3": processing_code,
        "4": f"{amount_fen:012d}",
        "7": transmission_dt,
        "11": network_stan,
        "32": acquirer_field32(acquirer_id),
        "37": rrn,
        "41": tid,
        "42": mid,
        "49": currency,
    }
    if pan:
        msg["2"] = pan
    if condition_code:
        msg["25"] = condition_code
    if entry_mode:
        msg["22"] = entry_mode
    if auth_code:
        msg["38"] = auth_code
    if original is not None:
        msg["90"] = original_data(*original, acquirer_id)
    return msg


def reversal_request(
    *,
    original_mti: str,
    pan: str | None,
    processing_code: str,
    amount_fen: int,
    currency: str,
    network_stan: str,
    transmission_dt: str,
    original_network_stan: str,
    original_transmission_dt: str,
    rrn: str,
    tid: str,
    mid: str,
    reason_code: str,
    acquirer_id: str,
) -> Message:
    """0420 for an original the host sent, with a STAN and field 7 of its own (the same on every repeat):
    field 90 = original MTI + original STAN + original date-time + acquirer + forwarder; 37 is the
    original's RRN (the transaction's retrieval reference).

    >>> m = reversal_request(original_mti="0200", pan=None, processing_code="000000", amount_fen=100,
    ...     currency="156", network_stan="000043", transmission_dt="1126101510",
    ...     original_network_stan="000042", original_transmission_dt="1126101500", rrn="000000000042",
    ...     tid="10000001", mid="898440153110001", reason_code="98", acquirer_id="49990000")
    >>> m["11"], m["90"]
    ('000043', '020000004211261015000004999000000000000000')
    """
    msg: Message = {
        "t": "0420",
        "3": processing_code,
        "4": f"{amount_fen:012d}",
        "7": transmission_dt,
        "11": network_stan,
        "32": acquirer_field32(acquirer_id),
        "37": rrn,
        "39": reason_code,
        "41": tid,
        "42": mid,
        "49": currency,
        "90": original_data(original_mti, original_network_stan, original_transmission_dt, acquirer_id),
    }
    if pan:
        msg["2"] = pan
    return msg
