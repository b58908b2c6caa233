"""The soft HSM: key hierarchy and check values, POS sign-in keys, MACs, PIN blocks, CVV, EMV cryptograms,
and card data at rest.

Everything here is a pure function of bytes (no database, socket, asyncio or clock), built on psec and pyemv
for DES and on cryptography for AES-GCM, HMAC and HKDF. Errors are `posgate.errors.SecurityError`; no key,
clear PIN or PIN block ever appears in an exception message or a `repr`.

This is the one place that silences cryptography's TripleDES deprecation warnings: psec and pyemv reach
TripleDES through `cryptography.hazmat.primitives`, and 3DES (two-key included) is what the card networks use.
"""

import warnings

from cryptography.utils import CryptographyDeprecationWarning

warnings.filterwarnings("ignore", message=r".*TripleDES", category=CryptographyDeprecationWarning)

from posgate.security.at_rest import CardVault, ProtectedPan, load_or_create_master_key  # noqa: E402
from posgate.security.cvv import card_verification_value, verify_cvv  # noqa: E402
from posgate.security.emv import (  # noqa: E402
    ARQC_DATA_TAGS,
    arqc_data,
    generate_arpc,
    generate_arqc,
    icc_master_key,
    session_key,
    verify_arqc,
)
from posgate.security.keys import decrypt_under, encrypt_under, generate_key, kcv, kcv_bytes  # noqa: E402
from posgate.security.network_mac import network_mac, verify_network_mac  # noqa: E402
from posgate.security.pin import (  # noqa: E402
    PinBlockFormatError,
    encode_pin_block,
    pin_offset,
    translate_pin_block,
    verify_pin_block,
)
from posgate.security.pos_mac import (  # noqa: E402
    MacAlgorithm,
    cup_ecb_mac,
    pos_mac,
    verify_cup_ecb_mac,
    verify_pos_mac,
    x919_mac,
)
from posgate.security.signin import (  # noqa: E402
    KeyGenerations,
    WorkingKeys,
    deliver_working_keys,
    issue_working_keys,
    new_working_keys,
    unwrap_working_keys,
)

__all__ = [
    "ARQC_DATA_TAGS",
    "CardVault",
    "KeyGenerations",
    "MacAlgorithm",
    "PinBlockFormatError",
    "ProtectedPan",
    "WorkingKeys",
    "arqc_data",
    "card_verification_value",
    "cup_ecb_mac",
    "decrypt_under",
    "deliver_working_keys",
    "encode_pin_block",
    "encrypt_under",
    "generate_arpc",
    "generate_arqc",
    "generate_key",
    "icc_master_key",
    "issue_working_keys",
    "kcv",
    "kcv_bytes",
    "load_or_create_master_key",
    "network_mac",
    "new_working_keys",
    "pin_offset",
    "pos_mac",
    "session_key",
    "translate_pin_block",
    "unwrap_working_keys",
    "verify_arqc",
    "verify_cup_ecb_mac",
    "verify_cvv",
    "verify_network_mac",
    "verify_pin_block",
    "verify_pos_mac",
    "x919_mac",
]
