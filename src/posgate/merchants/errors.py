"""Onboarding errors: each carries the HTTP status and error code the API answers with, and names the field
(or the record) that is wrong. Messages never hold a full ID number, card number or key."""

from __future__ import annotations

from posgate.errors import PosgateError


class OnboardingError(PosgateError):
    """Root of onboarding's refusals; `status` and `code` are what the API answers."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class FieldError(OnboardingError):
    """An input is invalid: 422, message starting with the field's name."""

    status = 422
    code = "invalid_field"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", field)


class UploadTooLarge(FieldError):
    """An upload exceeds its size limit: 413."""

    status = 413
    code = "upload_too_large"


class StateConflict(OnboardingError):
    """The record is not in a state that allows the action (e.g. approving a rejected application): 409."""

    status = 409
    code = "state_conflict"


class NotFound(OnboardingError):
    """No such application, merchant or terminal: 404."""

    status = 404
    code = "not_found"
