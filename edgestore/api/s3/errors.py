"""S3 errors: one class per AWS error code, and the rendering of any of them as S3 XML.

Handlers and the S3 auth/body code raise these; the middleware in ``router.py`` is the
only place that turns them (and the protocol-neutral domain errors) into responses.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

__all__ = ["S3Error", "error_xml", "CODES"]


class S3Error(Exception):
    """An error with an S3 wire code. Subclasses fix ``code``, ``status`` and a default message."""

    code = "InternalError"
    status = 500
    message = "We encountered an internal error. Please try again."

    def __init__(self, message: str | None = None, **fields: str) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.fields = fields  # extra XML elements, e.g. BucketName, Key, ArgumentName


# One class per code we send, with AWS's documented status and default message.


class AccessDenied(S3Error):
    code = 'AccessDenied'
    status = 403
    message = 'Access Denied'


class AuthorizationHeaderMalformed(S3Error):
    code = 'AuthorizationHeaderMalformed'
    status = 400
    message = 'The authorization header is malformed.'


class AuthorizationQueryParametersError(S3Error):
    code = 'AuthorizationQueryParametersError'
    status = 400
    message = 'Error parsing the X-Amz-Credential parameter.'


class BadDigest(S3Error):
    code = 'BadDigest'
    status = 400
    message = 'The Content-MD5 or checksum you specified did not match what we received.'


class BucketAlreadyExists(S3Error):
    code = 'BucketAlreadyExists'
    status = 409
    message = 'The requested bucket name is not available.'


class BucketAlreadyOwnedByYou(S3Error):
    code = 'BucketAlreadyOwnedByYou'
    status = 409
    message = 'Your previous request to create the named bucket succeeded and you already own it.'


class BucketNotEmpty(S3Error):
    code = 'BucketNotEmpty'
    status = 409
    message = 'The bucket you tried to delete is not empty.'


class EntityTooLarge(S3Error):
    code = 'EntityTooLarge'
    status = 400
    message = 'Your proposed upload exceeds the maximum allowed object size.'


class EntityTooSmall(S3Error):
    code = 'EntityTooSmall'
    status = 400
    message = 'Your proposed upload is smaller than the minimum allowed object size.'


class ExpiredToken(S3Error):
    code = 'ExpiredToken'
    status = 400
    message = 'The provided token has expired.'


class IncompleteBody(S3Error):
    code = 'IncompleteBody'
    status = 400
    message = 'You did not provide the number of bytes specified by the Content-Length HTTP header.'


class InvalidAccessKeyId(S3Error):
    code = 'InvalidAccessKeyId'
    status = 403
    message = 'The AWS access key ID you provided does not exist in our records.'


class InvalidArgument(S3Error):
    code = 'InvalidArgument'
    status = 400
    message = 'Invalid Argument'


class InvalidBucketName(S3Error):
    code = 'InvalidBucketName'
    status = 400
    message = 'The specified bucket is not valid.'


class InvalidChunkSizeError(S3Error):
    code = 'InvalidChunkSizeError'
    status = 403
    message = 'Only the last chunk is allowed to have a size less than 8192 bytes'


class InvalidDigest(S3Error):
    code = 'InvalidDigest'
    status = 400
    message = 'The Content-MD5 or checksum you specified is not valid.'


class InvalidRange(S3Error):
    code = 'InvalidRange'
    status = 416
    message = 'The requested range is not satisfiable'


class InvalidRequest(S3Error):
    code = 'InvalidRequest'
    status = 400
    message = 'Invalid Request'


class InvalidURI(S3Error):
    code = 'InvalidURI'
    status = 400
    message = "Couldn't parse the specified URI."


class KeyTooLongError(S3Error):
    code = 'KeyTooLongError'
    status = 400
    message = 'Your key is too long'


class MalformedXML(S3Error):
    code = 'MalformedXML'
    status = 400
    message = 'The XML you provided was not well-formed or did not validate against our published schema.'


class MetadataTooLarge(S3Error):
    code = 'MetadataTooLarge'
    status = 400
    message = 'Your metadata headers exceed the maximum allowed metadata size.'


class RequestTimeout(S3Error):
    code = 'RequestTimeout'
    status = 400
    message = 'Your socket connection to the server was not read from or written to within the timeout period.'


class InvalidPart(S3Error):
    code = 'InvalidPart'
    status = 400
    message = 'One or more of the specified parts could not be found.'


class InvalidPartOrder(S3Error):
    code = 'InvalidPartOrder'
    status = 400
    message = 'The list of parts was not in ascending order.'


class NoSuchUpload(S3Error):
    code = 'NoSuchUpload'
    status = 404
    message = 'The specified multipart upload does not exist.'


class InvalidPartNumber(S3Error):
    code = 'InvalidPartNumber'
    status = 416
    message = 'The requested partnumber is not satisfiable'


class IllegalVersioningConfigurationException(S3Error):
    code = 'IllegalVersioningConfigurationException'
    status = 400
    message = 'The versioning configuration specified in the request is invalid.'


class NoSuchVersion(S3Error):
    code = 'NoSuchVersion'
    status = 404
    message = 'The specified version does not exist.'


class MethodNotAllowed(S3Error):
    code = 'MethodNotAllowed'
    status = 405
    message = 'The specified method is not allowed against this resource.'


class MissingContentLength(S3Error):
    code = 'MissingContentLength'
    status = 411
    message = 'You must provide the Content-Length HTTP header.'


class MissingSecurityHeader(S3Error):
    code = 'MissingSecurityHeader'
    status = 400
    message = 'Your request is missing a required header.'


class NoSuchBucket(S3Error):
    code = 'NoSuchBucket'
    status = 404
    message = 'The specified bucket does not exist'


class NoSuchKey(S3Error):
    code = 'NoSuchKey'
    status = 404
    message = 'The specified key does not exist.'


class NotImplemented(S3Error):
    code = 'NotImplemented'
    status = 501
    message = 'A header you provided implies functionality that is not implemented.'


class PreconditionFailed(S3Error):
    code = 'PreconditionFailed'
    status = 412
    message = 'At least one of the pre-conditions you specified did not hold'


class RequestTimeTooSkewed(S3Error):
    code = 'RequestTimeTooSkewed'
    status = 403
    message = 'The difference between the request time and the current time is too large.'


class ServiceUnavailable(S3Error):
    code = 'ServiceUnavailable'
    status = 503
    message = 'Reduce your request rate.'


class SignatureDoesNotMatch(S3Error):
    code = 'SignatureDoesNotMatch'
    status = 403
    message = ('The request signature we calculated does not match the signature you provided. '
               'Check your key and signing method.')


class SlowDown(S3Error):
    code = 'SlowDown'
    status = 503
    message = 'Please reduce your request rate.'


class TooManyBuckets(S3Error):
    code = 'TooManyBuckets'
    status = 400
    message = 'You have attempted to create more buckets than allowed'


class XAmzContentSHA256Mismatch(S3Error):
    code = 'XAmzContentSHA256Mismatch'
    status = 400
    message = "The provided 'x-amz-content-sha256' header does not match what was computed."


class InternalError(S3Error):
    code = 'InternalError'
    status = 500
    message = 'We encountered an internal error. Please try again.'


CODES: dict[str, type[S3Error]] = {cls.code: cls for cls in S3Error.__subclasses__()}


def error_xml(err: S3Error, resource: str, request_id: str) -> bytes:
    """The S3 error document for ``err``."""
    extra = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in err.fields.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{err.code}</Code><Message>{escape(err.message)}</Message>{extra}"
        f"<Resource>{escape(resource)}</Resource><RequestId>{request_id}</RequestId></Error>"
    ).encode()
