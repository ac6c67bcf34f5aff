"""The web UI: static pages and hand-written JavaScript over the REST API.

Pages live in ``static/`` (``<page>.html`` plus its script). The login page posts the API token
once to ``POST /ui/session``, which answers with an httpOnly, ``SameSite=Strict`` session cookie
(``Secure`` over https); no script can read the token or the session afterwards, and
``DELETE /ui/session`` logs out. The pages then call ``/v1/...`` with that cookie and an
``X-Requested-With`` header (:func:`loopwright.service.deps.principal`). Every UI response
carries a strict Content Security Policy (scripts, styles, everything from this origin only; no
inline script; no framing; inline styles on the Plotly dashboard only) and ``nosniff``,
``no-referrer`` and ``DENY`` headers.

Chart drawing uses the ``plotly.min.js`` that ships inside the installed ``plotly`` Python
package, served from there at ``/ui/vendor/plotly.min.js`` — no third-party code is copied
into this repository.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import Field
from starlette.types import Scope

from loopwright.service.auth import SESSION_SECONDS, Authenticator
from loopwright.service.deps import SESSION_COOKIE, Body
from loopwright.service.errors import Unauthenticated

STATIC = Path(__file__).parent / "static"
PAGES = ("index", "annotate", "review", "dashboard", "admin")
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# Plotly draws hover labels and its mode bar with inline styles: the dashboard alone allows
# inline *styles* (never inline script); every other page allows none.
PLOTLY_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def secure(response: Response) -> Response:
    """``response`` with the UI's security headers (a CSP already set is kept)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class SecureRoute(APIRoute):
    """A route whose every response gets the UI's security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_headers(request: Request) -> Response:
            return secure(await handler(request))

        return with_headers


class SecureStaticFiles(StaticFiles):
    """Static files with the UI's security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        return secure(await super().get_response(path, scope))


router = APIRouter(include_in_schema=False, route_class=SecureRoute)
static_files = SecureStaticFiles(directory=STATIC)


class LoginIn(Body):
    token: str = Field(min_length=1, max_length=1000)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/ui/")
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html")


@router.post("/ui/session", status_code=204)
def log_in(body: LoginIn, request: Request) -> Response:
    """Trade an API token for a session cookie (JSON only: a cross-site form cannot send it)."""
    authenticator: Authenticator | None = request.app.state.authenticator
    response = Response(status_code=204)
    if authenticator is None:  # open mode: nobody needs to log in
        return response
    session = authenticator.open_session(body.token)
    if session is None:
        raise Unauthenticated("that token is not valid")
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=SESSION_SECONDS,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.delete("/ui/session", status_code=204)
def log_out(request: Request) -> Response:
    """End the session of the cookie, if any, and clear the cookie."""
    authenticator: Authenticator | None = request.app.state.authenticator
    session = request.cookies.get(SESSION_COOKIE)
    if authenticator is not None and session:
        authenticator.end_session(session)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/ui/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


@router.get("/ui/{page}")
def page(page: str) -> Response:
    if page not in PAGES:
        body = {"code": "not_found", "message": f"no page {page!r}; pages: {', '.join(PAGES)}"}
        return JSONResponse(body, status_code=404)
    headers = {"Content-Security-Policy": PLOTLY_CSP} if page == "dashboard" else None
    return FileResponse(STATIC / f"{page}.html", headers=headers)
