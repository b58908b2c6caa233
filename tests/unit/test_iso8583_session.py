"""The sans-IO session core (`iso8583.session`): matching by key, late and unmatched replies, pipelining
limits, time-outs driven by `now`, frame deadlines and close semantics — bytes and time in, events out, no
socket and no clock."""

from __future__ import annotations

import subprocess
import sys

import pytest

from posgate.errors import DecodeError, EncodeError, FramingError
from posgate.iso8583.codec import encode_network, encode_pos
from posgate.iso8583.framing import build_network_frame, build_pos_frame
from posgate.iso8583.session import (
    NETWORK_WIRE,
    POS_WIRE,
    BadFrame,
    FrameDeadlineExpired,
    Inbound,
    RequestFailed,
    RequestReceived,
    RequestTimedOut,
    ResponseReceived,
    Session,
    SessionClosed,
    SessionError,
    Undecodable,
    Unmatched,
)

TPDU = bytes.fromhex("6000030000")
HEADER = bytes.fromhex("603100000000")
ENVELOPE = TPDU + HEADER
TID = "10000001"


def net(mti: str, stan: str, **fields: str) -> dict[str, str]:
    return {"t": mti, "11": stan, **{key.removeprefix("f"): value for key, value in fields.items()}}


def net_frame(mti: str, stan: str, **fields: str) -> bytes:
    return build_network_frame(encode_network(net(mti, stan, **fields)))


def pos(mti: str, stan: str, tid: str = TID, **fields: str) -> dict[str, str]:
    return {
        "t": mti,
        "11": stan,
        "41": tid,
        **{key.removeprefix("f"): value for key, value in fields.items()},
    }


def pos_frame(mti: str, stan: str, tid: str = TID, **fields: str) -> bytes:
    return build_pos_frame(TPDU, HEADER, encode_pos(pos(mti, stan, tid, **fields)))


def send_net(session: Session[str], mti: str, stan: str, now: float = 0.0, timeout_s: float = 10.0) -> bytes:
    msg = net(mti, stan, f70="301") if mti == "0800" else net(mti, stan)
    return session.send_request(msg, encode_network(msg), now, timeout_s, token=f"{mti}/{stan}")[1]


def send_pos(session: Session[str], mti: str, stan: str, now: float = 0.0, timeout_s: float = 10.0) -> bytes:
    msg = pos(mti, stan)
    return session.send_request(
        msg, encode_pos(msg), now, timeout_s, token=f"{mti}/{stan}", envelope=ENVELOPE
    )


def events(session: Session[str]) -> list[object]:
    out = []
    while (event := session.next_event()) is not None:
        out.append(event)
    return out


def tokens(found: list[object]) -> list[tuple[str, str]]:
    """(event type, token) of each event about one of our requests."""
    return [
        (type(e).__name__, e.request.token)
        for e in found
        if isinstance(e, ResponseReceived | RequestTimedOut | RequestFailed)
    ]


# ---------------------------------------------------------------------------------------------- matching


def test_answers_out_of_order_each_reach_their_request() -> None:
    session: Session[str] = Session(NETWORK_WIRE)
    for stan in ("000001", "000002", "000003"):
        send_net(session, "0200", stan)
    assert session.in_flight == 3
    session.receive_data(net_frame("0210", "000003", f39="00") + net_frame("0210", "000001", f39="51"), 1.0)
    found = events(session)
    assert tokens(found) == [("ResponseReceived", "0200/000003"), ("ResponseReceived", "0200/000001")]
    assert [e.response.fields["39"] for e in found] == ["00", "51"]
    assert session.in_flight == 1
    assert [p.token for p in session.waiting()] == ["0200/000002"]


def test_the_key_is_the_response_mti_and_the_stan() -> None:
    """The same STAN with another MTI is another request (a reversal reuses its original's STAN)."""
    session: Session[str] = Session(NETWORK_WIRE)
    send_net(session, "0200", "000001")
    send_net(session, "0420", "000001")
    session.receive_data(net_frame("0430", "000001", f39="00"), 1.0)
    assert tokens(events(session)) == [("ResponseReceived", "0420/000001")]
    session.receive_data(net_frame("0210", "000001", f39="00"), 2.0)
    assert tokens(events(session)) == [("ResponseReceived", "0200/000001")]


def test_a_reply_to_no_request_is_unmatched() -> None:
    session: Session[str] = Session(NETWORK_WIRE)
    send_net(session, "0200", "000001")
    session.receive_data(net_frame("0210", "000009", f39="00"), 1.0)
    [event] = events(session)
    assert isinstance(event, Unmatched) and event.message.fields["11"] == "000009"
    assert session.in_flight == 1


def test_the_network_wire_never_matches_another_mti() -> None:
    session: Session[str] = Session(NETWORK_WIRE)
    send_net(session, "0200", "000001")
    session.receive_data(net_frame("0430", "000001", f39="30"), 1.0)
    assert [type(e) for e in events(session)] == [Unmatched]
    assert session.in_flight == 1


def test_pos_answers_must_carry_the_requests_tid() -> None:
    session: Session[str] = Session(POS_WIRE)
    send_pos(session, "0200", "000001")
    session.receive_data(pos_frame("0210", "000001", tid="99999999", f39="00"), 1.0)
    assert [type(e) for e in events(session)] == [Unmatched]
    session.receive_data(pos_frame("0210", "000001", f39="00"), 2.0)
    [event] = events(session)
    assert isinstance(event, ResponseReceived)
    assert (event.response.tpdu, event.response.header) == (TPDU, HEADER)
    assert event.response.fields == pos("0210", "000001", f39="00")


def test_a_pos_error_answer_with_another_mti_matches_its_only_request_with_that_stan() -> None:
    session: Session[str] = Session(POS_WIRE)
    send_pos(session, "0200", "000001")
    send_pos(session, "0200", "000002")
    session.receive_data(pos_frame("0830", "000002", f39="30"), 1.0)
    assert tokens(events(session)) == [("ResponseReceived", "0200/000002")]


def test_a_pos_error_answer_is_unmatched_when_two_requests_have_its_stan() -> None:
    session: Session[str] = Session(POS_WIRE)
    send_pos(session, "0200", "000001")
    send_pos(session, "0400", "000001")
    session.receive_data(pos_frame("0830", "000001", f39="30"), 1.0)
    assert [type(e) for e in events(session)] == [Unmatched]
    assert session.in_flight == 2


def test_the_request_frame_is_the_wire_frame() -> None:
    session: Session[str] = Session(POS_WIRE)
    msg = pos("0800", "000001", f60="00000001003")
    request, frame = session.send_request(msg, encode_pos(msg), 0.0, 5.0, token="t", envelope=ENVELOPE)
    assert (request.key, request.mti, request.stan, request.token) == (
        ("0810", "000001", TID),
        "0800",
        "000001",
        "t",
    )
    assert frame == build_pos_frame(TPDU, HEADER, encode_pos(msg))
    network: Session[str] = Session(NETWORK_WIRE)
    assert send_net(network, "0800", "000001") == net_frame("0800", "000001", f70="301")


def test_a_bad_envelope_is_refused_and_nothing_waits() -> None:
    session: Session[str] = Session(POS_WIRE)
    msg = pos("0800", "000001")
    with pytest.raises(EncodeError, match="header: expected 6 bytes, got 5"):
        session.send_request(msg, encode_pos(msg), 0.0, 5.0, token="t", envelope=ENVELOPE[:-1])
    network: Session[str] = Session(NETWORK_WIRE)
    with pytest.raises(ValueError, match="no envelope"):
        network.send_request(net("0800", "1"), b"0800", 0.0, 5.0, token="t", envelope=ENVELOPE)
    assert session.in_flight == network.in_flight == 0


def test_frames_split_across_reads_and_several_in_one_read() -> None:
    session: Session[str] = Session(NETWORK_WIRE)
    for stan in ("000001", "000002", "000003"):
        send_net(session, "0200", stan)
    stream = b"".join(net_frame("0210", stan, f39="00") for stan in ("000001", "000002", "000003"))
    session.receive_data(stream[:3], 1.0)
    assert session.next_event() is None
    session.receive_data(stream[3:60], 2.0)
    first = events(session)
    session.receive_data(stream[60:], 3.0)
    rest = events(session)
    assert tokens(first + rest) == [("ResponseReceived", f"0200/{s}") for s in ("000001", "000002", "000003")]
    assert [e.response.received_at for e in first + rest] == [2.0, 2.0, 3.0]


def test_elapsed_is_from_sending_to_receiving() -> None:
    session: Session[str] = Session(NETWORK_WIRE)
    send_net(session, "0200", "000001", now=100.0)
    session.receive_data(net_frame("0210", "000001", f39="00"), 100.125)
    [event] = events(session)
    assert event.elapsed_s == pytest.approx(0.125)
    assert event.request.sent_at == 100.0


# ---------------------------------------------------------------------------------------------- pipelining


def test_a_second_request_with_the_same_key_is_refused() -> None:
    session: Session[str] = Session(POS_WIRE)
    send_pos(session, "0200", "000001")
    with pytest.raises(SessionError, match="a 0200 with STAN 000001 is already waiting for its response"):
        send_pos(session, "0200", "000001")
    assert [p.token for p in session.waiting()] == ["0200/000001"]


def test_at_most_max_in_flight_requests_wait() -> None:
    session: Session[str] = Session(NETWORK_WIRE, max_in_flight=2)
    send_net(session, "0200", "000001")
    send_net(session, "0200", "000002")
    with pytest.raises(SessionError, match="2 requests already waiting"):
        send_net(session, "0200", "000003")
    session.receive_data(net_frame("0210", "000001", f39="00"), 1.0)
    events(session)
    send_net(session, "0200", "000003")
    assert session.in_flight == 2


def test_max_in_flight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Session(NETWORK_WIRE, max_in_flight=0)


def test_a_server_hands_out_requests_up_to_its_limit_then_pauses_reading() -> None:
    server: Session[str] = Session(NETWORK_WIRE, serve=True, max_in_flight=2)
    stream = b"".join(net_frame("0200", f"00000{n}") for n in range(1, 5))
    server.receive_data(stream, 1.0)
    handed = events(server)
    assert [e.request.fields["11"] for e in handed] == ["000001", "000002"]
    assert all(isinstance(e, RequestReceived) for e in handed)
    assert server.reading_paused and server.serving == 2
    answer = encode_network(net("0210", "000001", f39="00"))
    assert server.send_response(handed[0].request, answer) == build_network_frame(answer)
    assert not server.reading_paused
    [third] = events(server)
    assert third.request.fields["11"] == "000003"
    server.finish_request(handed[1].request)  # e.g. a fault drops it: the slot is free all the same
    [fourth] = events(server)
    assert fourth.request.fields["11"] == "000004"
    assert server.serving == 2


def test_a_server_without_a_limit_never_pauses() -> None:
    server: Session[str] = Session(NETWORK_WIRE, serve=True)
    server.receive_data(b"".join(net_frame("0200", f"{n:06d}") for n in range(100)), 1.0)
    assert len(events(server)) == 100
    assert not server.reading_paused


def test_a_server_gets_unmatched_for_answers_and_a_client_for_requests() -> None:
    server: Session[str] = Session(NETWORK_WIRE, serve=True)
    server.receive_data(net_frame("0810", "000001", f39="00", f70="001"), 1.0)
    assert [type(e) for e in events(server)] == [Unmatched]
    client: Session[str] = Session(NETWORK_WIRE)
    client.receive_data(net_frame("0800", "000001", f70="001"), 1.0)
    assert [type(e) for e in events(client)] == [Unmatched]
    assert client.serving == 0


# ---------------------------------------------------------------------------------------------- time-outs


def test_requests_time_out_at_their_deadline_and_not_before() -> None:
    session: Session[str] = Session(NETWORK_WIRE)
    send_net(session, "0200", "000001", now=0.0, timeout_s=5.0)
    send_net(session, "0200", "000002", now=1.0, timeout_s=2.0)
    send_net(session, "0200", "000003", now=2.0, timeout_s=5.0)
    assert session.next_deadline() == 3.0
    session.handle_timer(2.999)
    assert events(session) == []
    session.handle_timer(3.0)
    assert tokens(events(session)) == [("RequestTimedOut", "0200/000002")]
    assert session.next_deadline() == 5.0
    session.handle_timer(7.5)
    assert tokens(events(session)) == [("RequestTimedOut", "0200/000001"), ("RequestTimedOut", "0200/000003")]
    assert session.next_deadline() is None and session.in_flight == 0


def test_a_late_answer_is_unmatched() -> None:
    session: Session[str] = Session(NETWORK_WIRE)
    send_net(session, "0200", "000001", now=0.0, timeout_s=5.0)
    session.handle_timer(5.0)
    assert tokens(events(session)) == [("RequestTimedOut", "0200/000001")]
    session.receive_data(net_frame("0210", "000001", f39="00"), 6.0)
    [late] = events(session)
    assert isinstance(late, Unmatched) and late.message.fields["11"] == "000001"


def test_an_answered_request_never_times_out() -> None:
    session: Session[str] = Session(NETWORK_WIRE)
    send_net(session, "0200", "000001", now=0.0, timeout_s=5.0)
    session.receive_data(net_frame("0210", "000001", f39="00"), 1.0)
    events(session)
    assert session.next_deadline() is None
    session.handle_timer(100.0)
    assert events(session) == []


def test_an_abandoned_request_neither_times_out_nor_gets_its_answer() -> None:
    session: Session[str] = Session(NETWORK_WIRE)
    send_net(session, "0200", "000001", now=0.0, timeout_s=5.0)
    [request] = session.waiting()
    session.abandon(request)
    session.abandon(request)  # twice: no harm
    assert session.in_flight == 0 and session.next_deadline() is None
    session.handle_timer(10.0)
    session.receive_data(net_frame("0210", "000001", f39="00"), 11.0)
    assert [type(e) for e in events(session)] == [Unmatched]
    send_net(session, "0200", "000001", now=12.0)  # its key is free again
    assert session.in_flight == 1


def test_the_key_of_a_timed_out_request_is_free_again() -> None:
    session: Session[str] = Session(POS_WIRE)
    send_pos(session, "0200", "000001", now=0.0, timeout_s=1.0)
    session.handle_timer(1.0)
    events(session)
    send_pos(session, "0200", "000001", now=2.0, timeout_s=1.0)
    assert session.next_deadline() == 3.0


def test_a_frame_must_arrive_whole_within_the_frame_deadline() -> None:
    server: Session[str] = Session(NETWORK_WIRE, serve=True, frame_deadline_s=10.0)
    assert server.next_deadline() is None
    frame = net_frame("0200", "000001")
    server.receive_data(frame[:5], 100.0)
    assert server.next_deadline() == 110.0
    for n, now in enumerate((103.0, 106.0, 109.0), start=5):  # a trickle does not reset it
        server.receive_data(frame[n : n + 1], now)
        assert server.next_deadline() == 110.0
    server.handle_timer(109.9)
    assert events(server) == []
    server.handle_timer(110.0)
    [expired] = events(server)
    assert expired == FrameDeadlineExpired(10.0, 8)
    assert server.reading_paused and server.next_deadline() is None
    server.receive_data(frame[8:], 111.0)  # too late: the stream is over
    assert events(server) == []


def test_the_frame_deadline_starts_with_each_frames_first_byte() -> None:
    server: Session[str] = Session(NETWORK_WIRE, serve=True, frame_deadline_s=10.0)
    first, second = net_frame("0200", "000001"), net_frame("0200", "000002")
    server.receive_data(first + second[:3], 100.0)
    [request] = events(server)
    assert request.request.fields["11"] == "000001"
    assert server.next_deadline() == 110.0
    server.receive_data(second[3:], 105.0)
    assert [e.request.fields["11"] for e in events(server)] == ["000002"]
    assert server.next_deadline() is None


def test_the_earliest_of_request_and_frame_deadlines_comes_first() -> None:
    session: Session[str] = Session(NETWORK_WIRE, serve=True, frame_deadline_s=10.0)
    send_net(session, "0200", "000001", now=0.0, timeout_s=30.0)
    session.receive_data(b"\x00", 5.0)
    assert session.next_deadline() == 15.0
    session.receive_data(b"\x05abcde", 6.0)
    assert session.next_deadline() == 30.0


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("prefix", "problem"),
    [(b"\x00\x00", "frame length is 0"), (b"\x08\x01", "frame length 2049 exceeds the maximum 2048")],
)
def test_a_bad_length_ends_the_stream(prefix: bytes, problem: str) -> None:
    session: Session[str] = Session(NETWORK_WIRE)
    send_net(session, "0200", "000001")
    session.receive_data(prefix + b"rest", 1.0)
    [bad] = events(session)
    assert isinstance(bad, BadFrame) and isinstance(bad.error, FramingError)
    assert str(bad.error) == f"length: {problem} at byte 0"
    session.receive_data(net_frame("0210", "000001", f39="00"), 2.0)
    assert events(session) == [] and session.reading_paused
    assert session.in_flight == 1  # until the shell says the connection is gone


def test_an_undecodable_message_is_reported_and_the_stream_goes_on() -> None:
    session: Session[str] = Session(NETWORK_WIRE)
    send_net(session, "0200", "000001")
    session.receive_data(build_network_frame(b"0210garbage") + net_frame("0210", "000001", f39="00"), 1.0)
    bad, good = events(session)
    assert isinstance(bad, Undecodable) and isinstance(bad.error, DecodeError)
    assert bad.body == b"0210garbage" and bad.received_at == 1.0
    assert isinstance(good, ResponseReceived)


def test_a_pos_frame_with_a_bad_tpdu_is_undecodable() -> None:
    session: Session[str] = Session(POS_WIRE)
    body = b"\x61" + build_pos_frame(TPDU, HEADER, encode_pos(pos("0810", "000001", f39="00")))[3:]
    session.receive_data(len(body).to_bytes(2, "big") + body, 1.0)
    [bad] = events(session)
    assert isinstance(bad, Undecodable) and isinstance(bad.error, FramingError)
    assert str(bad.error) == "TPDU: expected id 0x60, got 0x61 at byte 0"


# ---------------------------------------------------------------------------------------------- close


def test_pending_requests_fail_when_the_link_closes_before_the_answer() -> None:
    session: Session[str] = Session(NETWORK_WIRE)
    send_net(session, "0200", "000001")
    send_net(session, "0420", "000001")
    session.connection_lost("closed by the issuer")
    found = events(session)
    assert tokens(found) == [("RequestFailed", "0200/000001"), ("RequestFailed", "0420/000001")]
    assert {e.why for e in found} == {"closed by the issuer"}
    assert session.closed and session.closed_why == "closed by the issuer"
    assert session.in_flight == 0 and session.next_deadline() is None
    with pytest.raises(SessionClosed, match="connection closed: closed by the issuer") as refused:
        send_net(session, "0200", "000002")
    assert refused.value.why == "closed by the issuer"


def test_answers_received_before_the_close_are_still_delivered() -> None:
    session: Session[str] = Session(NETWORK_WIRE)
    send_net(session, "0200", "000001")
    send_net(session, "0200", "000002")
    session.receive_data(net_frame("0210", "000002", f39="00"), 1.0)
    session.connection_lost("reset")
    assert tokens(events(session)) == [("ResponseReceived", "0200/000002"), ("RequestFailed", "0200/000001")]


def test_connection_lost_is_idempotent_and_nothing_times_out_after_it() -> None:
    session: Session[str] = Session(NETWORK_WIRE)
    send_net(session, "0200", "000001", timeout_s=1.0)
    session.connection_lost("first")
    session.connection_lost("second")
    session.handle_timer(10.0)
    found = events(session)
    assert [(type(e).__name__, e.why) for e in found] == [("RequestFailed", "first")]
    assert session.closed_why == "first"


def test_a_closed_session_reads_nothing_more() -> None:
    session: Session[str] = Session(NETWORK_WIRE)
    session.connection_lost("")
    session.receive_data(net_frame("0210", "000001", f39="00"), 1.0)
    assert events(session) == []
    with pytest.raises(SessionClosed, match=r"^connection closed$"):
        send_net(session, "0200", "000001")


def test_inbound_carries_the_frame() -> None:
    session: Session[str] = Session(POS_WIRE)
    frame = pos_frame("0810", "000001", f39="00")
    session.receive_data(frame, 1.0)
    [event] = events(session)
    assert isinstance(event, Unmatched)
    message: Inbound = event.message
    assert message.body == frame[2:] and message.payload == frame[13:] and message.mti == "0810"


def test_the_core_imports_no_io() -> None:
    """The session core is pure: importing it loads no event loop, socket or database library."""
    io = ("asyncio", "socket", "ssl", "selectors", "sqlalchemy")
    code = f"import sys, posgate.iso8583.session; print(sorted(m for m in {io!r} if m in sys.modules))"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
