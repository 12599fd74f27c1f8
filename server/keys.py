"""Typed keys of what the application and each request hold."""

from __future__ import annotations

import asyncio

from aiohttp import web

from instastore.config import Settings
from instastore.model import User, UserSession
from instastore.services import Services

SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)
# Set once SIGTERM (or SIGINT) arrived: /readyz answers 503, answers close their connection.
DRAINING = web.AppKey("draining", asyncio.Event)
# Request key: the authenticated User, or None (web.RequestKey from aiohttp 3.14 on).
USER = web.RequestKey("user", User) if hasattr(web, "RequestKey") else "instastore.user"
# Request key: the session of the bearer token, or None.
SESSION = (
    web.RequestKey("session", UserSession) if hasattr(web, "RequestKey") else "instastore.session"
)
