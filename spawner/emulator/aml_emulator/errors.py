"""The errors the emulator answers with: ARM's and Azure AD's.

Every ARM refusal carries an ARM error body (``error.code``,
``error.message``) and the HTTP status AML uses, so the real SDK raises the
same exception type it would raise against Azure. A token-endpoint refusal
(:class:`TokenError`) carries Azure AD's OAuth error name and AADSTS number.
"""

from __future__ import annotations


class ArmError(Exception):
    def __init__(self, status: int, code: str, message: str, *, details=None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.retry_after = retry_after

    def body(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def not_found(kind: str, name: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource 'Microsoft.MachineLearningServices/{kind}/{name}' was not found.",
    )


def bad_request(message: str, code: str = "UserError", detail_code: str | None = None) -> ArmError:
    details = [{"code": detail_code, "message": message}] if detail_code else None
    return ArmError(400, code, message, details=details)


def conflict(message: str, detail_code: str | None = None) -> ArmError:
    details = [{"code": detail_code, "message": message}] if detail_code else None
    return ArmError(409, "Conflict", message, details=details)


class TokenError(Exception):
    """A token-endpoint failure, rendered as Azure AD's JSON error body."""

    def __init__(self, status: int, error: str, code: int, message: str):
        super().__init__(f"AADSTS{code}: {message}")
        self.status, self.error, self.code, self.message = status, error, code, message


def missing_parameter(name: str) -> TokenError:
    return TokenError(400, "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'.")
