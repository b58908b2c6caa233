"""The automatic checks run when an application is submitted, shown to the reviewer with it.

Hard rules (a broken one refuses the submission with 422) are enforced by `form`, `images` and the per-ID
limit; what is recorded here is the evidence that each passed, plus warnings that need a human eye
(no licence, a photo used twice, a mobile number or settlement card shared with another applicant). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from posgate.merchants.form import ValidApplication
from posgate.merchants.images import PHOTO_KINDS, ImageInfo

MAX_MERCHANTS_PER_ID = 3


@dataclass(frozen=True)
class Check:
    name: str
    outcome: str  # pass | warn
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def automatic_checks(
    app: ValidApplication,
    photos: Mapping[str, ImageInfo],
    merchants_for_id: int,
    mobile_shared_with: int,
    card_shared_with: int,
) -> list[Check]:
    """`merchants_for_id`: merchants and open applications this ID number already has (this one not
    counted); `*_shared_with`: other applicants (other ID numbers) using the same mobile / card."""
    checks = [
        Check("id_number", "pass", f"check character and birth date valid; applicant is {app.age}"),
        Check("mobile", "pass", "11-digit mainland mobile number"),
        Check("settlement_card", "pass", f"Luhn valid; debit card of {app.settlement_bank}"),
        Check("card_holder", "pass", "card holder is the applicant"),
        Check("business_type", "pass", f"{app.business_type} → MCC {app.mcc}; area {app.area_code}"),
        Check(
            "merchants_per_id",
            "pass",
            f"{merchants_for_id + 1} of at most {MAX_MERCHANTS_PER_ID} merchants for this ID number",
        ),
    ]
    if app.licence_number:
        checks.append(Check("licence_number", "pass", "unified social credit code valid"))
    else:
        checks.append(Check("licence_number", "warn", "no business licence: individual merchant"))
    checks.append(
        Check("photos", "pass", f"{len(photos)} of {len(PHOTO_KINDS)} photos, JPEG/PNG content verified")
    )
    by_hash: dict[str, list[str]] = {}
    for kind, info in photos.items():
        by_hash.setdefault(info.sha256, []).append(kind)
    for kinds in by_hash.values():
        if len(kinds) > 1:
            checks.append(Check("photos_distinct", "warn", f"the same photo is used for {', '.join(kinds)}"))
    if mobile_shared_with:
        checks.append(
            Check(
                "mobile_shared", "warn", f"mobile number also used by {mobile_shared_with} other applicant(s)"
            )
        )
    if card_shared_with:
        checks.append(
            Check(
                "card_shared", "warn", f"settlement card also used by {card_shared_with} other applicant(s)"
            )
        )
    return checks
