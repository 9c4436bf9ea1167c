"""Shared helpers of the end-to-end and engine tests: the stream validator, SSE parsing, a live server."""
