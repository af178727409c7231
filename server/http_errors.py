"""Errors at the edge: exceptions become PROTOCOL.md error codes, HTTP statuses and bodies.

:func:`error_code_for` is shared by the HTTP API and the sockets, so one exception
always becomes the same code on every path. A body is ``{"error": {"code",
"message"}}`` with the code's fixed message: nothing from the exception, the request
or a record ever reaches it, and every ``not_found`` is byte-identical whatever its
cause (no such id, another workspace's, another owner's).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agents.exceptions import Conflict, DepthLimitExceeded, NotFound, RateLimited, Unavailable
from agents.models import Principal
from audit import AuditUnavailable
from server.auth import bearer_token, verify_token
from server.exceptions import Unauthorized
from server.protocol import ErrorCode

# Most specific first: the first match wins.
_CODES: tuple[tuple[type[Exception], ErrorCode], ...] = (
    (Unauthorized, ErrorCode.UNAUTHORIZED),
    (NotFound, ErrorCode.NOT_FOUND),
    (DepthLimitExceeded, ErrorCode.DEPTH_LIMIT),
    (Conflict, ErrorCode.CONFLICT),
    (RateLimited, ErrorCode.RATE_LIMITED),
    (Unavailable, ErrorCode.UNAVAILABLE),
    (AuditUnavailable, ErrorCode.UNAVAILABLE),
)

_STATUSES: Mapping[ErrorCode, int] = {
    ErrorCode.BAD_FRAME: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.NOT_FOUND: 404,
    # Delegation is refused for a reason that lies in the task tree's current state.
    ErrorCode.DEPTH_LIMIT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.CONFLICT: 409,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}

# "malformed frame" reads oddly on HTTP; every other code keeps its protocol message.
_HTTP_MESSAGES: Mapping[ErrorCode, str] = {ErrorCode.BAD_FRAME: "malformed request"}

# Seconds a client should wait before retrying; short, since both states pass quickly.
RETRY_AFTER_S = 1

NO_STORE = {"cache-control": "no-store"}


def error_code_for(exc: BaseException) -> ErrorCode:
    """The PROTOCOL.md error code for *exc*; ``internal`` for anything unexpected.

    A task group's :class:`ExceptionGroup` of one exception is unwrapped first.
    """
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return ErrorCode.INTERNAL


def http_status_for(code: ErrorCode) -> int:
    """The HTTP status that carries *code*."""
    return _STATUSES[code]


def error_body(code: ErrorCode) -> dict[str, dict[str, str]]:
    """``{"error": {"code", "message"}}`` with the code's fixed message."""
    return {"error": {"code": code.value, "message": _HTTP_MESSAGES.get(code, code.message)}}


def error_response(code: ErrorCode) -> JSONResponse:
    """The JSON error response for *code*, with its status and advisory headers."""
    headers = dict(NO_STORE)
    if code is ErrorCode.UNAUTHORIZED:
        # RFC 6750, 3: tell the client which scheme is expected, and nothing more.
        headers["www-authenticate"] = "Bearer"
    elif code in (ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE):
        headers["retry-after"] = str(RETRY_AFTER_S)
    return JSONResponse(error_body(code), status_code=http_status_for(code), headers=headers)


def authenticate(request: Request, secret: str) -> Principal:
    """The principal of the request's ``Authorization: Bearer`` token.

    Raises :class:`~server.exceptions.Unauthorized` when it is missing, malformed,
    forged or expired.
    """
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise Unauthorized("missing token")
    return verify_token(secret, token)


_HTTP_STATUS_CODES: Mapping[int, ErrorCode] = {
    401: ErrorCode.UNAUTHORIZED,
    404: ErrorCode.NOT_FOUND,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.TOO_LARGE,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.UNAVAILABLE,
}


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown path, wrong method) in the API's error shape.

    Register with ``Starlette(exception_handlers={HTTPException: http_exception_handler})``.
    """
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status >= 500:
        code = ErrorCode.INTERNAL
    else:
        code = _HTTP_STATUS_CODES.get(status, ErrorCode.BAD_FRAME)
    headers = dict(NO_STORE)
    if isinstance(exc, HTTPException) and exc.headers:
        # Keeps ``Allow`` on a 405.
        headers.update(exc.headers)
    return JSONResponse(error_body(code), status_code=status, headers=headers)
