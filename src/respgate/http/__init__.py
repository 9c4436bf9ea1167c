"""The ASGI application: routes, SSE framing, auth, error mapping."""
