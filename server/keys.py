"""Typed keys of what the application and each request hold."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from instastore.accounts import Accounts
from instastore.config import Settings
from instastore.model import User
from instastore.photos import Photos
from instastore.ratelimit import RateLimiter
from instastore.social import Social
from instastore.storage.ports import Stores
from instastore.timeline import Timeline
from instastore.uploads import Uploads


@dataclass
class Services:
    stores: Stores
    accounts: Accounts
    photos: Photos
    social: Social
    timeline: Timeline
    uploads: Uploads
    upload_limiter: RateLimiter


SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)
# Request key: the authenticated User, or None (web.RequestKey from aiohttp 3.14 on).
USER = web.RequestKey("user", User) if hasattr(web, "RequestKey") else "instastore.user"
