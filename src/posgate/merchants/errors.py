"""Onboarding errors: each names the field (or the record) that is wrong and carries a stable `code` (the
kind of refusal, e.g. `invalid_field`); the faces decide what it becomes (the API's HTTP status is mapped in
`api/errors.py`). Messages never hold a full ID number, card number or key."""

from __future__ import annotations

from posgate.errors import PosgateError


class OnboardingError(PosgateError):
    """Root of onboarding's refusals; `code` names the kind of refusal."""

    code = "bad_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class FieldError(OnboardingError):
    """An input is invalid; the message starts with the field's name."""

    code = "invalid_field"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", field)


class UploadTooLarge(FieldError):
    """An upload exceeds its size limit."""

    code = "upload_too_large"


class StateConflict(OnboardingError):
    """The record is not in a state that allows the action (e.g. approving a rejected application)."""

    code = "state_conflict"


class NotFound(OnboardingError):
    """No such application, merchant or terminal."""

    code = "not_found"
