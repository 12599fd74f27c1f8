"""/openapi.json describes exactly the routes the app serves."""

from __future__ import annotations

from instastore.server.app import create_app
from instastore.server.routes import ROUTES


async def test_openapi_lists_every_route_and_nothing_else(aiohttp_client, embedded_settings):
    client = await aiohttp_client(create_app(embedded_settings))
    spec = await (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    served = {(method, path) for method, path, _ in ROUTES}
    assert documented == served
    web_page = {"/", "/static"}  # the web page's files: not part of the API
    registered = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.method != "HEAD" and route.resource.canonical not in web_page
    }
    assert registered == served
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["responses"], f"{method} {path} is undocumented"
