"""ISO 8583 for posgate: the POS dialect (terminals) and the network dialect (issuers) as data, the codec
that checks every field (and says which bytes a MAC covers), pure TCP framing (length prefix, TPDU, header),
the request/response session of one connection (`session`: matching, pipelining, time-outs) and the
`posgate decode` explainer.

No sockets, no clock, no database: bytes (and the time, where it matters) in, Messages (dicts of strings)
and events out, and back.
"""

from posgate.iso8583.codec import (
    Field60,
    Field61,
    Message,
    decode_network,
    decode_pos,
    encode_network,
    encode_network_with_mac,
    encode_pos,
    encode_pos_with_mac,
    mac_payload,
    network_mac_payload,
    parse_field60,
    parse_field61,
    response_mti,
    salvage_network,
    salvage_pos,
    split_network_mac,
    split_pos_mac,
)
from posgate.iso8583.framing import (
    MAX_FRAME_BYTES,
    POS_HEADER_LEN,
    TPDU_LEN,
    FrameBuffer,
    PosFrame,
    build_network_frame,
    build_pos_frame,
    response_header,
    response_tpdu,
    split_pos_frame,
)
from posgate.iso8583.inspect import describe
from posgate.iso8583.network_dialect import NETWORK_FIELD_TYPES, NETWORK_MTIS, NETWORK_SPEC
from posgate.iso8583.pos_dialect import POS_FIELD_TYPES, POS_MTIS, POS_RESPONSE_TEXT, POS_SPEC

__all__ = [
    "MAX_FRAME_BYTES",
    "NETWORK_FIELD_TYPES",
    "NETWORK_MTIS",
    "NETWORK_SPEC",
    "POS_FIELD_TYPES",
    "POS_HEADER_LEN",
    "POS_MTIS",
    "POS_RESPONSE_TEXT",
    "POS_SPEC",
    "TPDU_LEN",
    "Field60",
    "Field61",
    "FrameBuffer",
    "Message",
    "PosFrame",
    "build_network_frame",
    "build_pos_frame",
    "decode_network",
    "decode_pos",
    "describe",
    "encode_network",
    "encode_network_with_mac",
    "encode_pos",
    "encode_pos_with_mac",
    "mac_payload",
    "network_mac_payload",
    "parse_field60",
    "parse_field61",
    "response_header",
    "response_mti",
    "response_tpdu",
    "salvage_network",
    "salvage_pos",
    "split_network_mac",
    "split_pos_frame",
    "split_pos_mac",
]
