"""The dashboard's routes: `dashboard_router(settings)` gives them to the app, or none at all.

Closed by default: with no `dashboard_users` and no OPERATOR_DASHBOARD_TOKEN the router is empty,
so every /dashboard URL is the app's own 404, indistinguishable from a dashboard that does not
exist. Open, a request is let in by a bearer token (scripts) or a session cookie (people); anyone
else is sent to the login page (GET) or refused (anything else).

Pages are Jinja2 templates with autoescaping, no script at all, and every response carries headers
that forbid scripts, framing, inline styles, caching and referrers: what people texted (masked)
is on these pages, and some of it may be hostile markup.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
import re
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, Template

from bot.dashboard import svg
from bot.dashboard.auth import (
    LoginThrottle,
    Session,
    Sessions,
    check_config,
    check_login,
    same_token,
    session_key,
    token_matches,
)
from bot.dashboard.oncall import on_call_page
from bot.dashboard.queries import DashboardQueries, MessagePage, Overview
from bot.db.database import DatabaseUnavailable
from bot.settings import Settings
from bot.state.protocols import StoreUnavailable
from bot.web.body import bounded_body, hang_ups_answered

log = logging.getLogger(__name__)

PREFIX = "/dashboard"
LOGIN = f"{PREFIX}/login"
SESSION_COOKIE = "operator_dashboard"
LOGIN_COOKIE = "operator_dashboard_login"
"""The pre-login cookie: a random nonce the login form's CSRF token is bound to."""
LOGIN_COOKIE_S = 3600
MAX_FORM_BYTES = 4096
HOURS_DEFAULT, HOURS_MAX = 24, 720
PAGE_MAX = 2000
"""Pages of 50 messages reachable by `?page=` (100,000 messages back); older ones are for `operator history`."""
WINDOWS = ((1, "1 h"), (6, "6 h"), (24, "24 h"), (168, "7 d"), (720, "30 d"))
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
MAX_VERIFYING = 2
"""Password checks at once (each ~30 ms of CPU and 16 MiB): a login flood cannot starve the bot."""
_NONCE = re.compile(r"[A-Za-z0-9_-]{22,64}")
_NUMBER = re.compile(r"[0-9]{1,9}")


class _SecuredRoute(APIRoute):
    """Adds the security headers to every response of a dashboard route (the stylesheet may be cached)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = hang_ups_answered(super().get_route_handler())

        async def secured(request: Request) -> Response:
            response = await handler(request)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return secured


def dashboard_router(settings: Settings) -> APIRouter:
    """The dashboard's routes for these settings (none when it is not configured: closed).

    Raises `ConfigError` for a `dashboard_users` entry that is not a password hash, or a weak token
    or secret, so a bad configuration stops the start-up rather than locking people out later.
    """
    check_config(settings)
    router = APIRouter(route_class=_SecuredRoute)
    if not settings.dashboard_users and settings.dashboard_token is None:
        return router
    dashboard = Dashboard(settings)
    for path, endpoint, method in [
        (PREFIX, dashboard.overview, "GET"),
        (f"{PREFIX}/messages", dashboard.messages, "GET"),
        (f"{PREFIX}/oncall", dashboard.oncall, "GET"),
        (LOGIN, dashboard.login_form, "GET"),
        (LOGIN, dashboard.login, "POST"),
        (f"{PREFIX}/logout", dashboard.logout, "POST"),
        (f"{PREFIX}/static/dashboard.css", dashboard.stylesheet, "GET"),
        (PREFIX + "/{rest:path}", dashboard.not_found, "GET"),
    ]:
        router.add_api_route(path, endpoint, methods=[method], include_in_schema=False)
    return router


@dataclass(frozen=True)
class Viewer:
    name: str
    session: Session | None
    """None when let in by the bearer token (no cookie, so nothing to log out of)."""


class Dashboard:
    """The handlers, with what they share: the session signer, the throttle, the templates."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.users = dict(settings.dashboard_users)
        self.token = settings.dashboard_token.get_secret_value() if settings.dashboard_token else None
        self.sessions = Sessions(session_key(settings), self.users, settings.dashboard_session_s)
        self.throttle = LoginThrottle()
        self.secure = (settings.public_url or "").lower().startswith("https://")
        self._verifying = asyncio.Semaphore(MAX_VERIFYING)
        env = Environment(loader=PackageLoader("bot.dashboard", "templates"), autoescape=True,
                          undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)  # fmt: skip
        env.filters["ms"] = _milliseconds
        env.filters["utc"] = _utc
        env.globals.update(bar_chart=svg.bar_chart, hourly_chart=svg.hourly_chart, health_strip=svg.health_strip)
        self.templates: dict[str, Template] = {
            name: env.get_template(f"{name}.html") for name in ("login", "overview", "messages", "notice", "oncall")
        }
        self.css = (importlib.resources.files("bot.dashboard") / "static" / "dashboard.css").read_bytes()

    # --- pages --------------------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        viewer = self._viewer(request)
        if isinstance(viewer, Response):
            return viewer
        hours = _bounded_int(request.query_params.get("hours"), HOURS_DEFAULT, 1, HOURS_MAX)
        data: Overview | None = None
        notice = None
        try:
            data = await self._queries(request).overview(datetime.now(UTC), hours, self.settings.health_sample_s)
        except DatabaseUnavailable as exc:
            notice = str(exc)
        bars = [(row.intent, row.texts) for row in data.intents] if data else []
        return self._render("overview", viewer, 200 if data else 503, data=data, notice=notice, hours=hours,
                            windows=WINDOWS, intent_bars=bars, sample_s=self.settings.health_sample_s)  # fmt: skip

    async def messages(self, request: Request) -> Response:
        viewer = self._viewer(request)
        if isinstance(viewer, Response):
            return viewer
        page_number = _bounded_int(request.query_params.get("page"), 1, 1, PAGE_MAX)
        page: MessagePage | None = None
        notice = None
        try:
            page = await self._queries(request).messages(page_number)
        except DatabaseUnavailable as exc:
            notice = str(exc)
        return self._render("messages", viewer, 200 if page else 503, page=page, page_number=page_number,
                            page_max=PAGE_MAX, notice=notice)  # fmt: skip

    async def oncall(self, request: Request) -> Response:
        viewer = self._viewer(request)
        if isinstance(viewer, Response):
            return viewer
        runtime = getattr(request.app.state, "runtime", None)
        service = runtime.services.oncall if runtime is not None else None
        if service is None:
            return self._render("oncall", viewer, 200, page=None, notice=None, configured=False)
        try:
            page = await on_call_page(service)
        except StoreUnavailable as exc:
            return self._render("oncall", viewer, 503, page=None, notice=str(exc), configured=True)
        return self._render("oncall", viewer, 200, page=page, notice=None, configured=True)

    async def stylesheet(self, request: Request) -> Response:
        return Response(self.css, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})

    async def not_found(self, request: Request) -> Response:
        return PlainTextResponse("Not found", status_code=404)

    # --- logging in and out -------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        if self.sessions.read(request.cookies.get(SESSION_COOKIE)) is not None:
            return RedirectResponse(PREFIX, status_code=303)
        return self._login_page(request, 200, error=None)

    async def login(self, request: Request) -> Response:
        address = request.client.host if request.client else "unknown"
        if self.throttle.blocked(address):
            return self._throttled()
        form = await _form(request)
        if form is None:
            return self._notice(400, "That form could not be read.")
        nonce = request.cookies.get(LOGIN_COOKIE) or ""
        if not _NONCE.fullmatch(nonce) or not same_token(form.get("csrf"), self.sessions.login_token(nonce)):
            return self._login_page(request, 403, error="The form had expired. Please log in again.")
        name, password = form.get("username", ""), form.get("password", "")
        if not self.throttle.attempt(address):  # counted before the awaited check, not after it fails
            return self._throttled()
        async with self._verifying:
            ok = await asyncio.to_thread(check_login, self.users, name, password)
        if not ok:
            log.info("dashboard: a failed login")  # never the name typed: it is sometimes the password
            return self._login_page(request, 401, error="Wrong login name or password.")
        self.throttle.succeeded(address)
        log.info("dashboard: %s logged in", name)
        response = RedirectResponse(PREFIX, status_code=303)
        self._set_cookie(response, SESSION_COOKIE, self.sessions.issue(name), int(self.sessions.max_age_s))
        response.delete_cookie(LOGIN_COOKIE, path=PREFIX, secure=self.secure, httponly=True, samesite="strict")
        return response

    def _throttled(self) -> Response:
        response = self._notice(429, "Too many failed logins from your address. Wait a minute, then try again.")
        response.headers["Retry-After"] = str(int(self.throttle.window_s))
        return response

    async def logout(self, request: Request) -> Response:
        session = self.sessions.read(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return self._notice(401, "You are not logged in.")
        form = await _form(request)
        if form is None or not same_token(form.get("csrf"), self.sessions.csrf_token(session)):
            return self._notice(403, "The form had expired. Reload the page and try again.")
        response = RedirectResponse(LOGIN, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX, secure=self.secure, httponly=True, samesite="strict")
        return response

    # --- helpers ------------------------------------------------------------------------------------

    def _viewer(self, request: Request) -> Viewer | Response:
        """Who is asking, or the response for someone who may not see the page."""
        header = request.headers.get("authorization")
        if header is not None:
            if token_matches(header, self.token):
                return Viewer("token", None)
            return PlainTextResponse("Wrong or missing bearer token.", status_code=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="operator-dashboard"'})  # fmt: skip
        session = self.sessions.read(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            return Viewer(session.name, session)
        if request.method in ("GET", "HEAD"):
            return RedirectResponse(LOGIN, status_code=303)
        return PlainTextResponse("Log in first.", status_code=401)

    def _queries(self, request: Request) -> DashboardQueries:
        database = getattr(request.app.state, "database", None)
        if database is None:
            raise DatabaseUnavailable("not open yet")
        return DashboardQueries(database)

    def _render(self, name: str, viewer: Viewer, status: int, **context: Any) -> Response:
        csrf = self.sessions.csrf_token(viewer.session) if viewer.session is not None else None
        html = self.templates[name].render(viewer=viewer, csrf=csrf, **context)
        return HTMLResponse(html, status_code=status)

    def _login_page(self, request: Request, status: int, error: str | None) -> Response:
        nonce = request.cookies.get(LOGIN_COOKIE) or ""
        fresh = not _NONCE.fullmatch(nonce)
        if fresh:
            nonce = secrets.token_urlsafe(24)
        html = self.templates["login"].render(viewer=None, csrf=self.sessions.login_token(nonce), error=error,
                                              can_login=bool(self.users))  # fmt: skip
        response = HTMLResponse(html, status_code=status)
        if fresh:
            self._set_cookie(response, LOGIN_COOKIE, nonce, LOGIN_COOKIE_S)
        return response

    def _notice(self, status: int, message: str) -> Response:
        html = self.templates["notice"].render(viewer=None, csrf=None, message=message)
        return HTMLResponse(html, status_code=status)

    def _set_cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path=PREFIX, secure=self.secure, httponly=True,
                            samesite="strict")  # fmt: skip


async def _form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form (first value of each field), or None: too big, not text, not a form."""
    body = await bounded_body(request, MAX_FORM_BYTES)
    if body is None:
        return None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


def _bounded_int(raw: str | None, default: int, low: int, high: int) -> int:
    """A query parameter as an int in [low, high]: junk gives the default, out of range the nearest bound."""
    if raw is None or not _NUMBER.fullmatch(raw.strip()):
        return default
    return min(max(int(raw.strip()), low), high)


def _milliseconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f} ms" if value < 10_000 else f"{value / 1000:.1f} s"


def _utc(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value is not None else "–"
