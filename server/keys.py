"""Typed keys of what the application holds."""

from aiohttp import web

from instastore.config import Settings
from instastore.storage.ports import Stores

SETTINGS = web.AppKey("settings", Settings)
STORES = web.AppKey("stores", Stores)
