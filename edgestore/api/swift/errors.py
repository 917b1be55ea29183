"""Swift's errors: one table from domain errors to Swift statuses, and their bodies.

Swift answers errors with a status and a short HTML (or plain) body, not a structured
document: clients look at the status only. The texts are the ones Swift's WSGI stack sends.
"""

from __future__ import annotations

from aiohttp import web

from edgestore import errors as domain

__all__ = ["SwiftError", "as_swift_error", "error_response", "status_line", "stock_body"]

# Swift's stock explanations (webob/swob), per status.
_EXPLANATIONS = {
    201: ("Created", ""),  # (a bulk extract's success, inside its body)
    400: ("Bad Request", "The server could not comply with the request since it is either "
          "malformed or otherwise incorrect."),
    401: ("Unauthorized", "This server could not verify that you are authorized to access the "
          "document you requested."),
    403: ("Forbidden", "Access was denied to this resource."),
    404: ("Not Found", "The resource could not be found."),
    405: ("Method Not Allowed", "The method is not allowed for this resource."),
    406: ("Not Acceptable", "The resource is not available in a format acceptable to your browser."),
    408: ("Request Timeout", "The server has waited too long for the request to be sent by the client."),
    409: ("Conflict", "There was a conflict when trying to complete your request."),
    411: ("Length Required", "Length Required"),
    412: ("Precondition Failed", "A precondition for this request was not met."),
    413: ("Request Entity Too Large", "The body of your request was too large for this server."),
    416: ("Requested Range Not Satisfiable", "The Range requested is not available."),
    422: ("Unprocessable Entity", "Unable to process the contained instructions"),
    500: ("Internal Error", "The server has either erred or is incapable of performing the "
          "requested operation."),
    501: ("Not Implemented", "The method is not implemented by this server."),
    499: ("Client Disconnect", "The client was disconnected during request."),
    502: ("Bad Gateway", "Bad gateway."),
    503: ("Service Unavailable", "The server is currently unavailable. Please try again at a later time."),
}


class SwiftError(Exception):
    """An answer other than success. `body` replaces the stock HTML when given (Swift
    sends plain sentences for some checks, e.g. "Maximum limit is 10000")."""

    def __init__(self, status: int, body: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(body or _EXPLANATIONS.get(status, ("Error", ""))[0])
        self.status = status
        self.body = body
        self.headers = headers or {}


def as_swift_error(exc: Exception) -> SwiftError:
    """The one table from domain errors to Swift answers."""
    if isinstance(exc, SwiftError):
        return exc
    if isinstance(exc, (domain.NoSuchBucket, domain.NoSuchObject)):
        return SwiftError(404)
    if isinstance(exc, domain.BucketExists):
        # Our container names are cluster-wide (they are S3 bucket names): a name another
        # account holds cannot be created here. Swift itself would never refuse this.
        return SwiftError(202) if exc.owned_by_requester else SwiftError(409)
    if isinstance(exc, (domain.BucketNotEmpty, domain.BrokenLargeObject)):
        return SwiftError(409)
    if isinstance(exc, domain.DigestMismatch):
        return SwiftError(422)
    if isinstance(exc, domain.BodyTooSlow):
        return SwiftError(408, str(exc))
    if isinstance(exc, domain.ClusterError):
        return SwiftError(503)
    if isinstance(exc, domain.ModelError):
        return SwiftError(400, str(exc))
    return SwiftError(500)


def status_line(status: int) -> str:
    """"409 Conflict": a status as Swift writes it inside bodies (bulk results)."""
    return f"{status} {_EXPLANATIONS.get(status, ('Error', ''))[0]}"


def stock_body(status: int) -> str:
    title, explanation = _EXPLANATIONS.get(status, ("Error", ""))
    return f"<html><h1>{title}</h1><p>{explanation}</p></html>"


def error_response(err: SwiftError, method: str) -> web.Response:
    if err.body is not None:
        text, content_type = err.body, "text/plain"
    else:
        text, content_type = stock_body(err.status), "text/html"
    body = b"" if method == "HEAD" or err.status in (202, 204, 304) else text.encode()
    response = web.Response(status=err.status, body=body, headers=err.headers, content_type=content_type,
                            charset="UTF-8")
    return response
