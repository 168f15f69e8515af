"""The errors vidgate raises, and how each one looks to a client.

Every error a client can see is a ``VidgateError``. The API layer turns it into the
OpenAI error shape ``{"error": {"message", "type", "param", "code"}}`` with
``status_code``; nothing else needs to know about HTTP.

    VidgateError
    ├── InvalidRequest          400  invalid_request_error
    │   ├── InvalidParameter    400  a named parameter is out of range or malformed
    │   ├── InvalidImage        400  an input image that cannot be used
    │   └── VideoNotReady       400  remix/extend of a video that has not completed
    ├── AuthenticationError     401  authentication_error
    ├── InsufficientQuota       402  insufficient_quota (a budget has no room)
    ├── PermissionDenied        403  permission_error
    ├── NotFound                404  not_found_error
    │   └── ModelNotFound       404  unknown model
    ├── Conflict                409  conflict_error (idempotency key reuse)
    ├── PayloadTooLarge         413  invalid_request_error
    ├── RateLimited             429  rate_limit_error (a key's or project's
    │                                limits, core/limits.py; with headers)
    ├── ServiceUnavailable      503  service_unavailable (no deployment can serve,
    │                                the database is down)
    └── StorageFull             507  server_error (no space left for media)
"""

from __future__ import annotations


class VidgateError(Exception):
    status_code: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        # Response headers the error carries (a 429's Retry-After and rate limit state).
        self.headers = headers or {}

    def to_body(self) -> dict[str, dict[str, str | None]]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(VidgateError):
    status_code = 400
    type = "invalid_request_error"
    code = "invalid_request"


class InvalidParameter(InvalidRequest):
    code = "invalid_parameter"


class InvalidImage(InvalidRequest):
    code = "invalid_image"


class VideoNotReady(InvalidRequest):
    code = "video_not_ready"


class AuthenticationError(VidgateError):
    status_code = 401
    type = "authentication_error"
    code = "invalid_api_key"


class InsufficientQuota(VidgateError):
    """A budget has no room for what a create would reserve: nothing was created.
    402, not 429: clients retry a 429, and retrying cannot make room in a budget."""

    status_code = 402
    type = "insufficient_quota"
    code = "budget_exceeded"


class PermissionDenied(VidgateError):
    status_code = 403
    type = "permission_error"
    code = "permission_denied"


class NotFound(VidgateError):
    status_code = 404
    type = "not_found_error"
    code = "not_found"


class ModelNotFound(NotFound):
    type = "invalid_request_error"
    code = "model_not_found"


class Conflict(VidgateError):
    status_code = 409
    type = "conflict_error"
    code = "conflict"


class PayloadTooLarge(VidgateError):
    status_code = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RateLimited(VidgateError):
    status_code = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class ServiceUnavailable(VidgateError):
    status_code = 503
    type = "service_unavailable"
    code = "service_unavailable"


class StorageFull(VidgateError):
    """The gateway's media storage has no space left: nothing was stored. It clears
    once an operator frees space; the request may be sent again then."""

    status_code = 507
    type = "server_error"
    code = "storage_full"
