"""The web UI: static pages and hand-written JavaScript over the REST API.

Pages live in ``static/`` (``<page>.html`` plus its script); they log in with an API token kept in
the browser's ``localStorage`` and call ``/v1/...`` like any other client. Chart drawing uses the
``plotly.min.js`` that ships inside the installed ``plotly`` Python package, served from there at
``/ui/vendor/plotly.min.js`` — no third-party code is copied into this repository.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from loopwright.errors import NotFound

STATIC = Path(__file__).parent / "static"
PAGES = ("index", "annotate", "review", "dashboard")

router = APIRouter(include_in_schema=False)
static_files = StaticFiles(directory=STATIC)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/ui/")
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html")


@router.get("/ui/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


@router.get("/ui/{page}")
def page(page: str) -> FileResponse:
    if page not in PAGES:
        raise NotFound(f"no page {page!r}; pages: {', '.join(PAGES)}")
    return FileResponse(STATIC / f"{page}.html")
