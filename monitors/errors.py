"""Everything that can go wrong talking to a backend, as types, and the one place they become SMS text.

    BackendError                 any failure of one named backend
    ├── BackendTimeout           no answer within its timeout (or the command's deadline)
    ├── BackendUnavailable       connection refused, DNS failure, or the circuit breaker is open
    ├── BackendAuthError         401/403: credentials wrong (never say which key)
    │   └── CredentialsMissing   the environment variables the backend needs are not set
    ├── BackendQueryError        the backend refused the query (bad PromQL, unknown index)
    └── BadBackendResponse       the answer broke the API's promise (not JSON, wrong shape, too big)
    NotConfigured                no monitor is set up to answer the command

Library exceptions (httpx, psycopg, botocore) are converted where they are caught, with
`raise … from exc`; nothing above the adapters sees a library type. Messages never carry URLs,
hosts, keys or response bodies: they go to phones and log lines.
"""

from __future__ import annotations

import re


class MonitorError(Exception):
    """Root of the monitors' errors."""


class NotConfigured(MonitorError):
    """No configured monitor serves this kind of question."""

    def __init__(self, what: str, hint: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint


class BackendError(MonitorError):
    """A named backend failed; `detail` is short, safe text (no URLs, no secrets)."""

    def __init__(self, backend: str, detail: str = "") -> None:
        super().__init__(f"{backend}: {detail}" if detail else backend)
        self.backend = backend
        self.detail = detail


class BackendTimeout(BackendError):
    def __init__(self, backend: str, seconds: float) -> None:
        super().__init__(backend, f"timed out after {seconds:g} s")
        self.seconds = seconds


class BackendUnavailable(BackendError):
    """Could not connect (or the breaker keeps us from trying)."""


class BackendAuthError(BackendError):
    """Refused for who we are; `status` is the HTTP status where there is one, `detail` a safe reason."""

    def __init__(self, backend: str, status: int | None = None, detail: str = "") -> None:
        super().__init__(backend, detail or (f"HTTP {status}" if status else "access denied"))
        self.status = status


class CredentialsMissing(BackendAuthError):
    """The backend needs credentials that are not set; `names` are the environment variables to set."""

    def __init__(self, backend: str, names: tuple[str, ...]) -> None:
        super().__init__(backend, detail="credentials not set")
        self.names = names


class BackendQueryError(BackendError):
    """The backend understood the request and refused it; `detail` is its short reason."""


class BadBackendResponse(BackendError):
    """The backend answered with something its API does not promise."""


MAX_DETAIL = 80


def describe(error: MonitorError, display: str | None = None) -> str:
    """One short SMS line for any monitor error ("Loki: timed out after 3 s")."""
    if isinstance(error, NotConfigured):
        return f"No {error.what} is configured." + (f" {error.hint}" if error.hint else "")
    if not isinstance(error, BackendError):
        return "Monitoring failed."
    name = display or error.backend
    if isinstance(error, BackendTimeout):
        return f"{name}: timed out after {error.seconds:g} s"
    if isinstance(error, CredentialsMissing):
        return f"{name}: credentials not set ({', '.join(error.names)})"
    if isinstance(error, BackendAuthError):
        why = f"HTTP {error.status}" if error.status else error.detail
        return f"{name}: access denied ({why}), check credentials"
    if isinstance(error, BackendUnavailable):
        return f"{name}: unreachable" + (f" ({_short(error.detail)})" if error.detail else "")
    if isinstance(error, BackendQueryError):
        return f"{name}: query rejected: {_short(error.detail)}"
    if isinstance(error, BadBackendResponse):
        return f"{name}: unreadable answer" + (f" ({_short(error.detail)})" if error.detail else "")
    return f"{name}: failed" + (f" ({_short(error.detail)})" if error.detail else "")


_ADDRESS = re.compile(
    r"[a-z][a-z0-9+.-]*://\S+"  # URLs
    r"|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"  # IPv4, with a port
    r"|\[[0-9a-f:]+\](?::\d+)?"  # IPv6 in brackets
    r"|\b[\w-]+(?:\.[\w-]+)+:\d+\b"  # host.name:port
    r"|\blocalhost(?::\d+)?\b",
    re.IGNORECASE,
)


def scrub(text: str) -> str:
    """A backend's own words made safe for a phone: no URLs, addresses or host names, one short line."""
    text = _ADDRESS.sub("<host>", " ".join(text.split()))
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


def _short(text: str) -> str:
    return scrub(text)
