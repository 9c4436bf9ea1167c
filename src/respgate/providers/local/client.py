"""HTTP to llama-server: streamed `/completion`, `/tokenize`, `/props`, and schema conversion."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp

from respgate.protocol.errors import UpstreamError

_READ_BUFSIZE = 4 * 1024 * 1024
_HEALTH_TIMEOUT = 2.0


@contextmanager
def engine_errors(action: str) -> Iterator[None]:
    """Translate aiohttp and timeout failures into `UpstreamError` (the server restarts it)."""
    try:
        yield
    except TimeoutError as exc:
        raise UpstreamError(
            f"the local model engine did not answer while {action} (timed out)", code="upstream_timeout"
        ) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"the local model engine failed while {action}: {exc}") from exc


class LlamaClient:
    """One aiohttp session per provider; `base_url` changes when the server restarts on a new port."""

    def __init__(self, *, token_timeout: float) -> None:
        self.base_url = ""
        self._token_timeout = token_timeout
        self._session: aiohttp.ClientSession | None = None
        self._grammars: dict[str, str] = {}

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No overall timeout: a long generation is fine as long as tokens keep coming.
            # The final SSE chunk echoes the whole prompt on one line: allow long lines.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=self._token_timeout),
                read_bufsize=_READ_BUFSIZE,
                # llama-server drops kept-alive connections after a cancelled generation; a pooled
                # socket would then fail the next request. Loopback connects cost microseconds.
                connector=aiohttp.TCPConnector(force_close=True),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(self, path: str, payload: dict[str, Any], *, action: str) -> Any:
        with engine_errors(action):
            async with self._http().post(self.base_url + path, json=payload) as response:
                body = await response.text()
                if response.status != 200:
                    raise UpstreamError(
                        f"the local model engine answered {response.status} while {action}: {body[:300]}",
                        upstream_status=response.status,
                    )
                return json.loads(body)

    async def healthy(self) -> bool:
        try:
            async with self._http().get(
                self.base_url + "/health", timeout=aiohttp.ClientTimeout(total=_HEALTH_TIMEOUT)
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def props(self) -> dict[str, Any]:
        with engine_errors("reading its properties"):
            async with self._http().get(self.base_url + "/props") as response:
                response.raise_for_status()
                data: dict[str, Any] = await response.json()
                return data

    async def count_tokens(self, text: str) -> int:
        data = await self._post("/tokenize", {"content": text}, action="counting tokens")
        return len(data["tokens"])

    async def schema_grammar(self, schema: dict[str, Any]) -> str:
        """llama.cpp's own JSON-Schema→GBNF conversion, read back from a zero-token request."""
        key = json.dumps(schema, sort_keys=True)
        if (cached := self._grammars.get(key)) is not None:
            return cached
        data = await self._post(
            "/completion",
            {"prompt": "", "n_predict": 0, "json_schema": schema, "cache_prompt": False},
            action="converting a tool schema to a grammar",
        )
        grammar = data.get("generation_settings", {}).get("grammar")
        if not isinstance(grammar, str) or "root ::=" not in grammar:
            raise UpstreamError("the local model engine did not return a grammar for a tool schema")
        self._grammars[key] = grammar
        return grammar

    async def complete(self, payload: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """Stream `/completion` chunks; closing the generator drops the connection, which stops
        generation in llama-server."""
        body = {**payload, "stream": True, "cache_prompt": True}
        with engine_errors("generating"):
            async with self._http().post(self.base_url + "/completion", json=body) as response:
                if response.status != 200:
                    text = await response.text()
                    raise UpstreamError(
                        f"the local model engine answered {response.status}: {text[:300]}",
                        upstream_status=response.status,
                        retryable=response.status >= 500,
                    )
                finished = False
                try:
                    async for raw in response.content:
                        line = raw.strip()
                        if not line.startswith(b"data:"):
                            continue
                        chunk: dict[str, Any] = json.loads(line[5:])
                        if "error" in chunk:
                            raise UpstreamError(f"the local model engine failed: {chunk['error']}")
                        finished = bool(chunk.get("stop"))
                        yield chunk
                        if finished:
                            return
                finally:
                    if not finished:
                        # Dropping the socket is how llama-server learns to stop generating.
                        response.close()
        # The stream ended without a final chunk: the engine died mid-answer.
        raise UpstreamError("the local model engine closed the stream before finishing")
