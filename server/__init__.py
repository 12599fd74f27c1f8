"""The aiohttp application (installed as ``instastore.server``): routes, error mapping,
resources. Thin: handlers parse, call the core, serialize."""
