"""The review workflow as a table: which action moves an application from which status to which. Pure.

submitted → under_review → approved | rejected | more_info_needed; more_info_needed → submitted.
"""

from __future__ import annotations

from posgate.merchants.errors import StateConflict

TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    # action: (allowed from, to)
    "start_review": (("submitted",), "under_review"),
    "approve": (("under_review",), "approved"),
    "reject": (("under_review",), "rejected"),
    "request_more_info": (("under_review",), "more_info_needed"),
    "resubmit": (("more_info_needed",), "submitted"),
}
STATUSES = ("submitted", "under_review", "approved", "rejected", "more_info_needed")
OPEN_STATUSES = ("submitted", "under_review", "more_info_needed")


def next_status(application_id: int, status: str, action: str) -> str:
    """The status after `action`, or `StateConflict` saying what is allowed.

    >>> next_status(7, "submitted", "start_review")
    'under_review'
    >>> next_status(7, "rejected", "approve")
    Traceback (most recent call last):
    ...
    posgate.merchants.errors.StateConflict: application 7 is rejected; approve needs it under_review
    """
    allowed, target = TRANSITIONS[action]
    if status not in allowed:
        raise StateConflict(
            f"application {application_id} is {status}; {action} needs it {' or '.join(allowed)}"
        )
    return target
