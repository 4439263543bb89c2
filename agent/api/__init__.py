"""The HTTP API (aiohttp): routes, middlewares and handlers over the service layer."""
