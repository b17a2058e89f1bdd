"""The API documentation page, Swagger UI served from the package instead of a CDN."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

SWAGGER = "/static/vendor/swagger-ui"
_CDN_PAGES = ("/docs", "/docs/oauth2-redirect", "/redoc")


def install(app: FastAPI) -> None:
    # FastAPI's own pages load their scripts from a CDN: replaced, not kept beside ours
    app.router.routes[:] = [r for r in app.router.routes
                            if getattr(r, "path", None) not in _CDN_PAGES]
    app.docs_url = app.redoc_url = None

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API",
            swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
            # a token pasted in Authorize survives a reload of the page (in this browser)
            swagger_ui_parameters={"persistAuthorization": True})
