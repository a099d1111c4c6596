"""The interactive API page: Swagger UI at `/docs` for the gateway's own OpenAPI document.

Its script, stylesheet and icon come from the `fastapi-offline` package's files and are served
by the gateway itself under `/docs/assets/`: a page inside a bank loads nothing from a public
CDN (FastAPI's default page does). On by default in development and tests; in production only
when `CRM_GATEWAY_DOCS_ENABLED=true`. The page and its assets hold no data and need no token;
trying a route from the page needs one (the `bearerAuth` scheme's Authorize button).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

ASSETS = {  # the only files served, by name
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
ASSET_PREFIX = "/docs/assets/"


def _asset_directory() -> Path:
    return Path(fastapi_offline.__file__).parent / "static"


router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs_page() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json", title="CRM gateway: API",
        swagger_js_url=ASSET_PREFIX + "swagger-ui-bundle.js", swagger_css_url=ASSET_PREFIX + "swagger-ui.css",
        swagger_favicon_url=ASSET_PREFIX + "favicon.png",
        swagger_ui_parameters={"persistAuthorization": False, "tryItOutEnabled": False},
    )


@router.get(ASSET_PREFIX + "{name}")
async def docs_asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status_code=404)
    # The files change only with the package's version: a browser may keep them a day.
    return FileResponse(_asset_directory() / name, media_type=media_type,
                        headers={"Cache-Control": "public, max-age=86400"})
