"""A near-free upstream for gateway benchmarks: fixed, pre-serialised answers on raw uvloop protocols.

Why not Starlette/uvicorn: every microsecond the mock spends is charged to the "direct" baseline and
blurs the difference we are after. A raw `asyncio.Protocol` with the httptools parser (both already
installed with uvicorn[standard]) answers a request with one parser feed, one dict lookup and one
`transport.write` of bytes built at start-up; its own cost is measured in every run (see `direct`).

Routes (any prefix before `/v1` is allowed so that a gateway's `base_url` can select the variant):
  POST …/chat/completions   Chat Completions, JSON or SSE (when the body holds `"stream": true`)
  POST …/responses          Responses API, JSON or SSE
  GET  …/models             a one-model list
  GET  /_stats              how many requests each route answered (to check what a gateway called)
A path segment `/t<N>/` sets the number of output tokens (default `--tokens`); `/d<MS>/` delays the
answer by MS milliseconds (an upstream that thinks, without costing CPU here).

Run: `python -m bench.mock_upstream --port 18001`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
from functools import cache
from typing import Any

import httptools
import orjson

CREATED = 1_760_000_000
_PREFIX = re.compile(rb"/(t|d)(\d+)(?=/)")


def _tokens(n: int) -> list[str]:
    # Distinct short words so that a gateway cannot collapse them; one token each in any tokenizer.
    return [f" w{i % 100}" for i in range(n)]


def _chat_json(n: int) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": CREATED,
            "model": "bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(_tokens(n)), "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n},
        }
    )


def _chat_sse(n: int, usage: bool) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": "bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return b"data: " + orjson.dumps(body) + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""}, None)]
    events += [chunk({"content": tok}, None) for tok in _tokens(n)]
    events.append(chunk({}, "stop"))
    if usage:
        tail = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": "bench",
            "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n},
        }
        events.append(b"data: " + orjson.dumps(tail) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def _response_obj(status: str, output: list[dict[str, Any]], n: int | None) -> dict[str, Any]:
    usage = None
    if n is not None:
        usage = {
            "input_tokens": 12,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": n,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 12 + n,
        }
    return {
        "id": "resp_bench",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": False,
        "completed_at": CREATED if status == "completed" else None,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "max_tool_calls": None,
        "model": "bench",
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "prompt_cache_key": None,
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": None,
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _message(text: str, status: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if text else []
    return {"id": "msg_bench", "type": "message", "status": status, "role": "assistant", "content": content}


def _responses_json(n: int) -> bytes:
    text = "".join(_tokens(n))
    return orjson.dumps(_response_obj("completed", [_message(text, "completed")], n))


def _responses_sse(n: int) -> list[bytes]:
    seq = 0
    events: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        nonlocal seq
        data = orjson.dumps({"type": kind, "sequence_number": seq, **fields})
        events.append(b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n")
        seq += 1

    text = "".join(_tokens(n))
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    ids = {"item_id": "msg_bench", "output_index": 0, "content_index": 0}
    emit("response.created", response=_response_obj("in_progress", [], None))
    emit("response.in_progress", response=_response_obj("in_progress", [], None))
    emit("response.output_item.added", output_index=0, item=_message("", "in_progress"))
    emit("response.content_part.added", part=part, **ids)
    for tok in _tokens(n):
        emit("response.output_text.delta", delta=tok, logprobs=[], **ids)
    emit("response.output_text.done", text=text, logprobs=[], **ids)
    emit("response.content_part.done", part={**part, "text": text}, **ids)
    done = _message(text, "completed")
    emit("response.output_item.done", output_index=0, item=done)
    emit("response.completed", response=_response_obj("completed", [done], n))
    return events


def _http(body: bytes, content_type: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\nContent-Length: "
    return head + str(len(body)).encode() + b"\r\nx-request-id: req_bench\r\n\r\n" + body


def _http_sse(events: list[bytes]) -> bytes:
    # One chunk per event, as a real upstream flushes them, but written with a single syscall.
    chunks = [b"%x\r\n%b\r\n" % (len(ev), ev) for ev in events]
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\nx-request-id: req_bench\r\n\r\n"
    )
    return head + b"".join(chunks) + b"0\r\n\r\n"


@cache
def answer(kind: str, stream: bool, tokens: int, usage: bool) -> bytes:
    """The full HTTP response for one variant, built once."""
    if kind == "chat":
        if stream:
            return _http_sse(_chat_sse(tokens, usage))
        return _http(_chat_json(tokens), b"application/json")
    if kind == "responses":
        if stream:
            return _http_sse(_responses_sse(tokens))
        return _http(_responses_json(tokens), b"application/json")
    models = orjson.dumps({"object": "list", "data": [{"id": "bench", "object": "model", "owned_by": "bench"}]})
    return _http(models, b"application/json")


HITS: dict[str, int] = {}

NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class MockProtocol(asyncio.Protocol):
    """One keep-alive connection; requests are answered in order (no pipelining needed by clients)."""

    def __init__(self, default_tokens: int) -> None:
        self.default_tokens = default_tokens
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; the interface is the same.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.body.clear()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        path = self.url.split(b"?", 1)[0]
        tokens, delay_ms = self.default_tokens, 0
        for match in _PREFIX.finditer(path):
            if match.group(1) == b"t":
                tokens = int(match.group(2))
            else:
                delay_ms = int(match.group(2))
        body = bytes(self.body)
        stream = b'"stream":true' in body or b'"stream": true' in body
        if path.endswith(b"/chat/completions"):
            usage = b'"include_usage":true' in body or b'"include_usage": true' in body
            data = answer("chat", stream, tokens, usage)
        elif path.endswith(b"/responses"):
            data = answer("responses", stream, tokens, False)
        elif path.endswith(b"/models"):
            data = answer("models", False, 0, False)
        elif path == b"/_stats":
            data = _http(orjson.dumps(HITS), b"application/json")
        else:
            data = NOT_FOUND
        key = f"{path.decode(errors='replace')} stream={stream}"
        HITS[key] = HITS.get(key, 0) + 1
        keep = self.parser.should_keep_alive()
        if delay_ms:
            asyncio.get_running_loop().call_later(delay_ms / 1000, self._send, data, keep)
        else:
            self._send(data, keep)

    def _send(self, data: bytes, keep: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(data)
        if not keep:
            self.transport.close()


async def serve(host: str, port: int, tokens: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: MockProtocol(tokens), host, port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"mock upstream listening on http://{host}:{port}", flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18001)
    parser.add_argument("--tokens", type=int, default=16, help="output tokens when the path has no /t<N>/")
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.host, args.port, args.tokens))


if __name__ == "__main__":
    main()
