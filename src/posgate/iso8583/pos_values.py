"""What each POS request may carry, field by field (shared/spec/pos-8583.md, "Field layout" and "Messages"):
which fields a message kind may have, and which values its coded fields may take. The codec has already
checked the structure (lengths, digits, hex); this is the content, checked before any MAC is trusted.

Why it matters: the legacy "CUP ECB" MAC XORs the 8-byte blocks, so a forger who changes one field can
cancel the change at the same offset in another. Pinning every coded field to its listed values leaves no
room there (field 53 was the assessor's carrier). What stays free is listed in docs/security.md.

Kinds are named as `host.context.Kind` values ("sale", "sign-in", …). `problem(kind, message)` returns the
first thing wrong as `field N: …` (answer `30`), or None. Values are quoted only for coded fields; card and
key fields are never quoted.

Decisions beyond the spec's tables (docs/protocols/pos-8583.md, "Field content"):
- 60.4 read capability: 0 unknown, 2 magstripe, 5 contact chip, 6 contactless (the UnionPay codes terminals
  send); 60.5 IC condition: 0 normal, 1 last read not a chip or a good chip read, 2 the chip failed
  (fallback). Sub-fields after 60.5 are accepted and kept, as the spec says.
- a reversal's 3, 25 and 60.1 must be those of one reversible transaction (sale, void, pre-authorization,
  its void, completion, its void); its 39 one of the listed reasons `98`, `96`, `A0`.
- 14 (expiry), 12/13 (time, date) and 61.3 (date) must be real months, days and times; with 14 and a
  track 2 both present, they must agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from posgate.errors import PosgateError
from posgate.iso8583.private_fields import parse_field60, parse_field61

SECURITY_CONTROL = "2600000000000000"  # 53: PIN block with PAN, double-length key, no track encryption
PIN_CAPTURE_CODE = "12"  # 26
ENTRY_MODES = frozenset({"01", "02", "05", "07", "80"})  # 22, first two digits
PIN_ENTRY = frozenset({"1", "2"})  # 22, third digit: PIN entered / no PIN
READ_CAPABILITIES = frozenset({"", "0", "2", "5", "6"})  # 60.4
IC_CONDITIONS = frozenset({"", "0", "1", "2"})  # 60.5
REVERSAL_REASONS = frozenset({"98", "96", "A0"})  # 0400's 39

_CARD = frozenset({"2", "14", "22", "23", "35", "36"})
_PIN = frozenset({"26", "52", "53"})
_COMMON = frozenset({"t", "11", "12", "13", "41", "42", "59", "60", "63", "64"})
_ORIGINAL = frozenset({"37", "38", "61"})


@dataclass(frozen=True)
class Rule:
    """One kind of request: the fields it may carry, 60.1, the 60.3 codes, and 25 (empty: not expected)."""

    fields: frozenset[str]
    type_codes: frozenset[str]
    nmcs: frozenset[str]
    condition_codes: frozenset[str] = frozenset()


def _financial(type_code: str, condition: str, extra: frozenset[str], amount: bool = True) -> Rule:
    fields = _COMMON | _CARD | frozenset({"3", "25", "49"}) | extra | ({"4"} if amount else set())
    return Rule(fields, frozenset({type_code}), frozenset({"", "000"}), frozenset({condition}))


def _network(nmcs: set[str], extra: frozenset[str] = frozenset()) -> Rule:
    return Rule(_COMMON | extra, frozenset({"00"}), frozenset(nmcs))


RULES: Mapping[str, Rule] = {
    "balance": _financial("01", "00", _PIN | {"55"}, amount=False),
    "sale": _financial("22", "00", _PIN | {"55"}),
    "void": _financial("23", "00", _PIN | _ORIGINAL),
    "refund": _financial("25", "00", frozenset({"37", "61"})),
    "preauth": _financial("10", "06", _PIN | {"55"}),
    "preauth_void": _financial("11", "06", _PIN | _ORIGINAL),
    "completion": _financial("20", "06", _ORIGINAL),
    "completion_void": _financial("21", "06", _PIN | _ORIGINAL),
    "reversal": Rule(
        _COMMON | _CARD | _ORIGINAL | {"3", "4", "25", "39", "49", "55"},
        frozenset(),  # from the original: see REVERSIBLE
        frozenset({"", "000"}),
        frozenset({"00", "06"}),
    ),
    "sign-in": _network({"003", "004"}),
    "sign-out": _network({"002"}),
    "echo": _network({"301"}),
    "settlement": _network({"201"}, frozenset({"48", "49"})),
    "batch_upload": _network({"201", "203", "207"}, frozenset({"48"})),
}

# (3, 25) of a reversible transaction → its possible 60.1 (a reversal repeats the original's)
REVERSIBLE: Mapping[tuple[str, str], frozenset[str]] = {
    ("000000", "00"): frozenset({"22"}),
    ("200000", "00"): frozenset({"23"}),
    ("030000", "06"): frozenset({"10"}),
    ("200000", "06"): frozenset({"11", "21"}),
    ("000000", "06"): frozenset({"20"}),
}


def _month_day(mmdd: str) -> bool:
    month, day = int(mmdd[:2]), int(mmdd[2:])
    return 1 <= month <= 12 and 1 <= day <= 31


def _time(hhmmss: str) -> bool:
    return int(hhmmss[:2]) < 24 and int(hhmmss[2:4]) < 60 and int(hhmmss[4:]) < 60


def _expected(where: str, allowed: frozenset[str] | set[str], got: str) -> str:
    listed = ", ".join(sorted(v or "absent" for v in allowed))
    return f"{where} expected {listed}, got {got!r}"


def problem(kind: str, msg: Mapping[str, str]) -> str | None:
    """The first value in `msg` the spec does not allow for a request of this kind, or None.

    >>> sale = {"t": "0200", "3": "000000", "4": "000000000100", "11": "000001", "22": "021", "25": "00",
    ...         "26": "12", "35": "6229990000000012D3012101", "41": "10000001", "42": "898440153110001",
    ...         "49": "156", "52": "00" * 8, "53": "2600000000000000", "60": "2200000100060"}
    >>> problem("sale", sale) is None
    True
    >>> problem("sale", sale | {"53": "7600000000000000"})
    "field 53: expected 2600000000000000, got '7600000000000000'"
    >>> problem("sale", sale | {"60": "2300000100060"})
    "field 60: 60.1 expected 22, got '23'"
    >>> problem("sale", sale | {"39": "00"})
    'field 39 is not expected in a sale'
    """
    rule = RULES.get(kind)
    if rule is None:
        return None
    for field in msg:
        if field not in rule.fields:
            return f"field {field} is not expected in a {kind}"
    try:
        return _field60(rule, msg) or _coded(rule, msg) or _dates(msg) or _reversal(kind, msg)
    except PosgateError as exc:  # 60 or 61 does not parse
        return str(exc)


def _field60(rule: Rule, msg: Mapping[str, str]) -> str | None:
    if "60" not in msg:
        return None
    f60 = parse_field60(msg["60"])
    if rule.type_codes and f60.type_code not in rule.type_codes:
        return f"field 60: 60.1 expected {', '.join(sorted(rule.type_codes))}, got {f60.type_code!r}"
    if f60.nmc not in rule.nmcs:
        return _expected("field 60: 60.3", rule.nmcs, f60.nmc)
    if f60.read_capability not in READ_CAPABILITIES:
        return _expected("field 60: 60.4", READ_CAPABILITIES, f60.read_capability)
    if f60.ic_condition not in IC_CONDITIONS:
        return _expected("field 60: 60.5", IC_CONDITIONS, f60.ic_condition)
    return None


def _coded(rule: Rule, msg: Mapping[str, str]) -> str | None:
    if "25" in msg and msg["25"] not in rule.condition_codes:
        return _expected("field 25:", rule.condition_codes, msg["25"])
    if "22" in msg and (msg["22"][:2] not in ENTRY_MODES or msg["22"][2:] not in PIN_ENTRY):
        modes = ", ".join(sorted(ENTRY_MODES))
        return f"field 22: expected an entry mode of {modes} then 1 or 2, got {msg['22']!r}"
    if "53" in msg and msg["53"] != SECURITY_CONTROL:
        return f"field 53: expected {SECURITY_CONTROL}, got {msg['53']!r}"
    if "26" in msg and (msg["26"] != PIN_CAPTURE_CODE or "52" not in msg):
        return f"field 26: expected {PIN_CAPTURE_CODE} with a PIN block (52), got {msg['26']!r}"
    if "37" in msg and not (msg["37"].isascii() and msg["37"].isdigit()):
        return f"field 37: expected 12 digits, got {msg['37']!r}"
    if "38" in msg and not (msg["38"].isascii() and msg["38"].isalnum()):
        return f"field 38: expected 6 letters or digits, got {msg['38']!r}"
    return None


def _dates(msg: Mapping[str, str]) -> str | None:
    if "12" in msg and not _time(msg["12"]):
        return f"field 12: expected a time hhmmss, got {msg['12']!r}"
    if "13" in msg and not _month_day(msg["13"]):
        return f"field 13: expected a date MMDD, got {msg['13']!r}"
    if "14" in msg:
        if not 1 <= int(msg["14"][2:]) <= 12:
            return "field 14: expected an expiry date YYMM"  # card data: not quoted
        if "35" in msg and msg["35"].partition("D")[2][:4] not in ("", msg["14"]):
            return "field 14: the expiry date differs from track 2's"
    if "61" in msg:
        date = parse_field61(msg["61"]).date
        if date and not _month_day(date):
            return f"field 61: 61.3 expected a date MMDD, got {date!r}"
    return None


def _reversal(kind: str, msg: Mapping[str, str]) -> str | None:
    if kind != "reversal":
        return None
    if msg.get("39") not in REVERSAL_REASONS:
        return _expected("field 39:", REVERSAL_REASONS, msg.get("39", ""))
    type_codes = REVERSIBLE.get((msg.get("3", ""), msg.get("25", "")))
    if type_codes is None:
        return f"field 3: {msg.get('3', '')!r} with 25 = {msg.get('25', '')!r} is no reversible transaction"
    type_code = parse_field60(msg["60"]).type_code if "60" in msg else ""
    if type_code not in type_codes:
        return f"field 60: 60.1 expected {', '.join(sorted(type_codes))}, got {type_code!r}"
    return None
