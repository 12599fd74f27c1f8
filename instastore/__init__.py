"""instastore: a photo and video sharing backend in the shape of early Instagram.

The core library (ids, records, media, photos, timeline, search, configuration) lives in
this package and never speaks HTTP; the aiohttp application is ``instastore.server``
(the top-level ``server/`` folder) and storage sits behind the ports of
``instastore.storage``.
"""

__version__ = "0.1.0"
