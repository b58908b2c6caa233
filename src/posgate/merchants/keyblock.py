"""TMK delivery as a TR-31 key block (ANSI X9.143, psec): the terminal master key wrapped under the
acquirer's key-transfer key (KTK). Pure: keys in, key block out.

Header: version B (TDES, key derivation binding), usage K0 (key encryption / wrapping), algorithm T (TDES),
mode of use D (decrypt / unwrap only: the terminal uses its TMK to unwrap working keys), key version 00,
exportability N (not exportable once loaded).
"""

from __future__ import annotations

from psec import tr31

from posgate.security.keys import check_key

TMK_HEADER = "B0000K0TD00N0000"


def wrap_tmk(ktk: bytes, tmk: bytes) -> str:
    """The TMK as a TR-31 key block under the KTK (the block length is filled in by psec)."""
    check_key(ktk, "KTK")
    check_key(tmk, "TMK")
    return tr31.wrap(ktk, TMK_HEADER, tmk)


def unwrap_tmk(ktk: bytes, key_block: str) -> bytes:
    """The clear TMK from its key block (what a key-loading device does); raises psec's KeyBlockError if
    the block was altered or the KTK is wrong."""
    check_key(ktk, "KTK")
    _header, key = tr31.unwrap(ktk, key_block)
    return key
