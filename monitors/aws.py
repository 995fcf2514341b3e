"""boto3 for the AWS adapters (CloudWatch, API Gateway): clients that give up on time, and botocore's
errors turned into `BackendError`s at this one boundary.

boto3 blocks, so each call runs in a worker thread while the event loop waits under the monitor's
deadline. A thread cannot be cancelled, so botocore is told the same timeout and makes a single
attempt: a hung endpoint then frees the thread about when the caller has already given up, instead
of piling threads up behind retries. Credentials come only from the standard AWS chain
(environment, shared profile, instance or task role), never from the config file.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitors.errors import (
    BackendAuthError,
    BackendError,
    BackendQueryError,
    BackendTimeout,
    BackendUnavailable,
    BadBackendResponse,
    CredentialsMissing,
    scrub,
)

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")

AUTH_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnrecognizedClientException", "InvalidClientTokenId",
     "SignatureDoesNotMatch", "InvalidSignatureException", "IncompleteSignature", "MissingAuthenticationToken",
     "ExpiredToken", "ExpiredTokenException", "UnauthorizedOperation", "NotAuthorized", "AuthFailure"}
)  # fmt: skip
THROTTLE_CODES = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
     "LimitExceededException", "RequestThrottled", "RequestThrottledException"}
)  # fmt: skip
UNAVAILABLE_CODES = frozenset(
    {"ServiceUnavailable", "ServiceUnavailableException", "InternalFailure", "InternalError",
     "InternalServiceError", "InternalServerError", "InternalServerErrorException"}
)  # fmt: skip


NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "NotFoundException"})


class ResourceNotFound(BackendQueryError):
    """The named log group, API or stage does not exist (a health check tells this apart)."""


class AwsConfig(BaseModel):
    """What every AWS monitor section holds; keys and secrets are deliberately not among them."""

    model_config = ConfigDict(extra="forbid")

    region: str
    endpoint_url: str | None = None
    """Another endpoint than AWS's own (LocalStack, moto in tests, a VPC endpoint)."""
    timeout_s: float = Field(3.0, gt=0, le=30)

    @field_validator("region")
    @classmethod
    def _region_name(cls, value: str) -> str:
        if not _REGION.fullmatch(value):
            raise ValueError("not an AWS region name such as eu-west-1")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _plain_url(cls, value: str | None) -> str | None:
        if value is not None and not _URL.fullmatch(value):
            raise ValueError("must be an http(s) URL")
        return value


def make_client(service: str, config: AwsConfig) -> Any:
    """A boto3 client whose every call ends within about `timeout_s`, on one attempt."""
    botocore_config = Config(
        connect_timeout=config.timeout_s,
        read_timeout=config.timeout_s,
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=10,
    )
    session = boto3.session.Session(region_name=config.region)
    return session.client(service, endpoint_url=config.endpoint_url, config=botocore_config)


@contextlib.asynccontextmanager
async def deadline(display: str, seconds: float) -> AsyncIterator[None]:
    """Everything inside answers within `seconds` (several calls together), or `BackendTimeout`."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as exc:
        raise BackendTimeout(display, seconds) from exc


class NotAnAwsAnswer(Exception):
    """A success status with a body that is no JSON object: a proxy's page, a cut-off answer."""


def check_json_body(response_dict: Mapping[str, Any], operation_model: Any, **_: Any) -> None:
    """botocore reads an unparseable JSON body as an empty answer ("no log events"), and a
    non-object one crashes its parser; both are refused here, before botocore parses them."""
    if response_dict.get("status_code", 500) >= 300:
        return
    model = operation_model.service_model
    if (getattr(model, "resolved_protocol", None) or model.protocol) not in ("json", "rest-json"):
        return
    body = response_dict.get("body")
    if not isinstance(body, bytes):
        return  # a streamed body: not one our read calls get
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise NotAnAwsAnswer from exc
    if not isinstance(parsed, dict):
        raise NotAnAwsAnswer


class AwsBackend:
    """Calls to one AWS service for one monitor, each in a worker thread, errors already converted."""

    def __init__(self, display: str, service: str, config: AwsConfig) -> None:
        self.display = display
        self.timeout_s = config.timeout_s
        self.client = make_client(service, config)
        self.client.meta.events.register("before-parse", check_json_body)

    async def call(self, operation: str, **params: Any) -> Mapping[str, Any]:
        method = getattr(self.client, operation)
        try:
            answer = await asyncio.to_thread(functools.partial(method, **params))
        except (BotoCoreError, ClientError, ResponseParserError) as exc:
            raise convert(self.display, self.timeout_s, exc) from exc
        except (NotAnAwsAnswer, AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
            # Our parameters are checked by botocore before sending (ParamValidationError), so
            # these come from its parser meeting a JSON object of the wrong shape.
            raise BadBackendResponse(self.display, "not an AWS answer") from exc
        if not isinstance(answer, Mapping):
            raise BadBackendResponse(self.display, "not an AWS answer")
        return answer


def convert(display: str, timeout_s: float, exc: Exception) -> BackendError:
    """The `BackendError` a botocore failure means for the person asking."""
    if isinstance(exc, ClientError):
        return _client_error(display, exc)
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
        return BackendTimeout(display, timeout_s)
    if isinstance(exc, EndpointConnectionError):
        return BackendUnavailable(display, "cannot connect")
    if isinstance(exc, ConnectionClosedError):
        return BackendUnavailable(display, "connection dropped")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
        return CredentialsMissing(display, ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
    if isinstance(exc, ResponseParserError):
        return BadBackendResponse(display, "not an AWS answer")
    if isinstance(exc, ParamValidationError):
        return BackendQueryError(display, "invalid request")
    return BackendError(display, type(exc).__name__)


def _client_error(display: str, exc: Any) -> BackendError:
    response = exc.response if isinstance(exc.response, Mapping) else {}
    error = response.get("Error") or {}
    code = str(error.get("Code") or "")
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    if code in AUTH_CODES or status in (401, 403):
        return BackendAuthError(display, status or 403)
    if code in THROTTLE_CODES or status == 429:
        return BackendUnavailable(display, "throttled")
    if code in UNAVAILABLE_CODES or status in (502, 503, 504):
        return BackendUnavailable(display, f"HTTP {status}" if status else "service unavailable")
    if code in NOT_FOUND_CODES:
        return ResourceNotFound(display, _reason(code, error.get("Message")))
    if status in (400, 404, 409, 422):
        return BackendQueryError(display, _reason(code, error.get("Message")) or f"HTTP {status}")
    return BackendError(display, f"HTTP {status}" if status else "request failed")


_ARN = re.compile(r"arn:aws[\w-]*:\S*")
_ACCOUNT = re.compile(r"\b\d{12}\b")


def _reason(code: str, message: Any) -> str:
    """AWS's own short reason, only when it is a real AWS error (a named code), with ARNs and
    account numbers removed; an error made up from an unreadable body gives none."""
    if not code or code.isdigit():
        return ""
    text = message if isinstance(message, str) and message.strip() else code
    return scrub(_ACCOUNT.sub("<account>", _ARN.sub("<arn>", text)))
