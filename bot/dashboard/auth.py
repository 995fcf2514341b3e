"""Who may see the dashboard: password hashes, signed session cookies, CSRF tokens, a login throttle.

The dashboard shows what on-call engineers texted (masked), so it is closed unless configured, and
every piece here fails closed: a malformed hash verifies nothing, a tampered or expired cookie is
no session, a missing form token refuses the post.

- Passwords are never configured, only their scrypt hashes (`operator dashboard hash-password`), in
  a self-describing string `scrypt$n$r$p$salt$hash` so the cost can be raised later without breaking
  old hashes. Verifying costs ~30 ms of CPU and 16 MiB, so it runs in a thread, and a login name
  that does not exist is checked against a dummy hash: the answer takes as long either way.
- Sessions are signed, timestamped cookies (no server-side store: every worker and instance
  accepts them when they share the key). They carry the login name, a random id per login (the
  CSRF token is derived from it) and a fingerprint of the user's password hash, so changing a
  password (or removing the user) ends that user's sessions. A logout clears the cookie; a copy
  taken before stays valid until it expires (rotate OPERATOR_DASHBOARD_SECRET to end every session).
- The key is OPERATOR_DASHBOARD_SECRET, else derived from TWILIO_AUTH_TOKEN (every instance has it,
  so nothing extra to set up), else random per process (dev: a login lasts until the restart).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from bot.settings import ConfigError, Settings
from bot.web.security import PLACEHOLDER_SECRETS

log = logging.getLogger(__name__)

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
MAX_SCRYPT_MEMORY = 64 * 1024 * 1024
"""A configured hash asking for more memory than this is refused as malformed (not run)."""
MIN_SECRET_CHARS = 16
"""Bearer tokens and the session secret: anything shorter is a placeholder, not a secret."""
MAX_PASSWORD_CHARS = 1024
MIN_PASSWORD_CHARS = 10
"""What `operator dashboard hash-password` accepts: a login throttle slows guessing, it does not stop it."""
KEY_LABEL = b"operator dashboard session key v1"
"""Derives the session key from TWILIO_AUTH_TOKEN; the label keeps it distinct from Twilio's own use."""
_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 43 + "="
"""Verified against when the login name is unknown, so an unknown name costs what a wrong password does."""


def hash_password(password: str) -> str:
    """The string to put in `dashboard_users`: `scrypt$16384$8$1$<salt>$<hash>` (base64)."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=HASH_BYTES)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


@dataclass(frozen=True)
class _Hash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _parse(stored: str) -> _Hash | None:
    """The parts of a hash string, or None when it is not one this code can verify safely."""
    parts = stored.split("$") if isinstance(stored, str) else []
    if len(parts) != 6 or parts[0] != "scrypt" or not all(part.isdigit() for part in parts[1:4]):
        return None
    n, r, p = (int(part) for part in parts[1:4])
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or 128 * n * r * p > MAX_SCRYPT_MEMORY:
        return None
    try:
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(salt) < 8 or not 16 <= len(digest) <= 64:
        return None
    return _Hash(n, r, p, salt, digest)


def is_password_hash(stored: str) -> bool:
    """True for a string `verify_password` can check (what `hash_password` makes)."""
    return _parse(stored) is not None


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored`, in constant time; False (never an exception) for anything
    malformed. CPU-bound for ~30 ms: call it through `asyncio.to_thread`."""
    parsed = _parse(stored)
    if parsed is None or not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        digest = hashlib.scrypt(
            password.encode("utf-8", "surrogatepass"), salt=parsed.salt, n=parsed.n, r=parsed.r, p=parsed.p,
            dklen=len(parsed.digest), maxmem=MAX_SCRYPT_MEMORY + 1024 * 1024,
        )  # fmt: skip
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(digest, parsed.digest)


def check_login(users: dict[str, str], name: str, password: str) -> bool:
    """The one answer to "may this name log in with this password": an unknown name is verified
    against a dummy hash, so the time taken does not tell which names exist."""
    stored = users.get(name)
    matched = verify_password(password, stored if stored is not None else _DUMMY_HASH)
    return stored is not None and matched


def check_config(settings: Settings) -> None:
    """Refuse a dashboard configuration that cannot work or is not safe, at start-up (ConfigError)."""
    bad = sorted(name for name, stored in settings.dashboard_users.items() if not is_password_hash(stored))
    if bad:
        raise ConfigError(
            f"dashboard_users: the entry for {', '.join(repr(name[:40]) for name in bad)} is not a password hash; "
            "make one with `operator dashboard hash-password`"
        )
    if any(not name.strip() or len(name) > 64 for name in settings.dashboard_users):
        raise ConfigError("dashboard_users: login names must be 1 to 64 characters")
    secrets_set = {"OPERATOR_DASHBOARD_TOKEN": settings.dashboard_token,
                   "OPERATOR_DASHBOARD_SECRET": settings.dashboard_secret}  # fmt: skip
    for setting, value in secrets_set.items():
        if value is not None and _weak(value.get_secret_value()):
            raise ConfigError(
                f"{setting} is too short or a placeholder: use {MIN_SECRET_CHARS} or more random characters"
            )


def _weak(secret: str) -> bool:
    return len(secret.strip()) < MIN_SECRET_CHARS or secret.strip().lower() in PLACEHOLDER_SECRETS


def session_key(settings: Settings) -> bytes:
    """OPERATOR_DASHBOARD_SECRET, else derived from TWILIO_AUTH_TOKEN, else random for this process."""
    if settings.dashboard_secret is not None:
        return settings.dashboard_secret.get_secret_value().encode()
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    if token.strip().lower() not in PLACEHOLDER_SECRETS:
        return hmac.new(token.encode(), KEY_LABEL, hashlib.sha256).digest()
    if settings.dashboard_users:
        log.warning("dashboard logins last until this process restarts (set OPERATOR_DASHBOARD_SECRET)")
    return secrets.token_bytes(32)


def token_matches(header: str | None, token: str | None) -> bool:
    """Whether an `Authorization` header carries the dashboard's bearer token (constant time)."""
    if not header or not token:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), token.encode())


@dataclass(frozen=True)
class Session:
    name: str
    """The login name."""
    sid: str
    """Random per login: what the CSRF token is derived from."""


class Sessions:
    """Signs and reads session cookies and derives the form tokens, all from one key."""

    def __init__(self, key: bytes, users: dict[str, str], max_age_s: float,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._key = key
        self._users = users
        self.max_age_s = max_age_s
        self._clock = clock
        self._serializer = URLSafeTimedSerializer(key, salt="operator-dashboard-session",
                                                  signer=_clocked_signer(clock))  # fmt: skip

    def issue(self, name: str) -> str:
        """A cookie value for a fresh login of `name` (a configured user)."""
        payload = {"u": name, "s": secrets.token_urlsafe(16), "v": self._fingerprint(name)}
        return self._serializer.dumps(payload)

    def read(self, cookie: str | None) -> Session | None:
        """The session in a cookie, or None: missing, tampered, expired, or for a user no longer configured
        (or whose password changed since)."""
        if not cookie or len(cookie) > 1024:
            return None
        try:
            payload = self._serializer.loads(cookie, max_age=math.ceil(self.max_age_s))
        except (BadSignature, ValueError, TypeError):  # BadSignature covers SignatureExpired and bad payloads
            return None
        if not isinstance(payload, dict):
            return None
        name, sid, fingerprint = payload.get("u"), payload.get("s"), payload.get("v")
        if not isinstance(name, str) or not isinstance(sid, str) or name not in self._users:
            return None
        if not isinstance(fingerprint, str) or not hmac.compare_digest(fingerprint, self._fingerprint(name)):
            return None
        return Session(name, sid)

    def csrf_token(self, session: Session) -> str:
        """The token every form of this session carries."""
        return self._mac(f"csrf:{session.sid}")

    def login_token(self, nonce: str) -> str:
        """The login form's token, bound to the pre-login cookie's nonce."""
        return self._mac(f"login:{nonce}")

    def _fingerprint(self, name: str) -> str:
        return self._mac(f"user:{name}:{self._users.get(name, '')}")[:16]

    def _mac(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()


def _clocked_signer(clock: Callable[[], float]) -> type[TimestampSigner]:
    """itsdangerous' timestamp signer on our clock, so tests can make a cookie as if issued long ago."""

    class ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return ClockedSigner


def same_token(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given).encode("utf-8", "replace"), expected.encode())


class LoginThrottle:
    """At most `limit` login attempts per client address per `window_s` that did not succeed; in memory,
    per process.

    An attempt is counted when its password check starts (`attempt`), not when it has failed: the check
    is awaited (~30 ms in a thread), and counting afterwards let 100 wrong passwords sent at once all
    pass the "blocked?" test before the first failure was counted (about 69 got checked). A success
    forgets the address's attempts.

    Behind a reverse proxy every client shares the proxy's address, so a guessing attacker then
    locks everyone out for a minute: better than letting the guessing go on.
    """

    def __init__(self, limit: int = 5, window_s: float = 60.0, max_addresses: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.limit = limit
        self.window_s = window_s
        self._max = max_addresses
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked(self, address: str) -> bool:
        failures = self._recent(address)
        return failures is not None and len(failures) >= self.limit

    def attempt(self, address: str) -> bool:
        """Count one password check from `address` before it runs (a failure until it `succeeded`), or
        False, counting nothing, when the address has used up its attempts. No await between the test
        and the count, so concurrent logins cannot all slip through."""
        if self.blocked(address):
            return False
        failures = self._recent(address)
        if failures is None:
            failures = self._failures[address] = deque()
            while len(self._failures) > self._max:
                self._failures.popitem(last=False)
        failures.append(self._clock())
        return True

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        cutoff = self._clock() - self.window_s
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        self._failures.move_to_end(address)
        return failures
