"""Client schemas are data: no reference in them makes the server open a file or a socket (issue 8, item 1).

Two recording listeners (one answers with a schema, one accepts and never answers) and a secret file
on disk are referenced in every way a schema can reference something, in every place a request
carries a schema, on every endpoint that checks one and in front of every kind of provider the tests
use. Each request is a 400 naming the field; no listener sees a connection; no answer holds the secret;
another tenant is served meanwhile.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway.upstreams import KINDS, Upstreams, entry
from support.harness import KEY_A, KEY_B, scripted

SECRET = "SECRET-3f9c1e7a-do-not-leak"
AUTH = {"Authorization": f"Bearer {KEY_A}"}


class Listener:
    """A TCP listener on loopback that counts the connections it accepts.

    With `answer`, each connection gets that HTTP response; without, it is held open and never answered.
    """

    def __init__(self, answer: bytes | None) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self.port: int = self._socket.getsockname()[1]
        self._answer = answer
        self._held: list[socket.socket] = []
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.accepted += 1
            if self._answer is None:
                self._held.append(connection)
                continue
            with connection:
                connection.settimeout(2)
                try:
                    connection.recv(65536)
                    connection.sendall(self._answer)
                except OSError:
                    pass

    def close(self) -> None:
        # shutdown() wakes the blocked accept(); close() alone does not on Linux.
        self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        for connection in self._held:
            connection.close()
        self._thread.join(timeout=5)


@pytest.fixture
def listeners() -> Iterator[tuple[Listener, Listener]]:
    schema = json.dumps({"type": "string", "description": SECRET}).encode()
    answering = Listener(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(schema) + schema
    )
    hanging = Listener(None)
    yield answering, hanging
    answering.close()
    hanging.close()


def references(secret: Path, answering: int, hanging: int) -> list[tuple[str, dict[str, Any]]]:
    """(name, schema) for every way a schema can point outside itself."""
    targets = {
        "file": secret.as_uri(),
        "file-localhost": f"file://localhost{secret}",
        "absolute-path": str(secret),
        "relative-path": f"../{secret.parent.name}/{secret.name}",
        "bare-name": secret.name,
        "http": f"http://127.0.0.1:{answering}/schema.json",
        "http-fragment": f"http://127.0.0.1:{answering}/schema.json#/definitions/x",
        "https": f"https://127.0.0.1:{answering}/schema.json",
        "http-hanging": f"http://127.0.0.1:{hanging}/schema.json",
        "localhost": f"http://localhost:{hanging}/",
        "urn": "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
        "ftp": f"ftp://127.0.0.1:{hanging}/schema.json",
    }
    cases: list[tuple[str, dict[str, Any]]] = []
    for name, target in targets.items():
        cases.append((f"ref-{name}", {"$ref": target}))
    url = targets["http-hanging"]
    cases += [
        ("dynamic-ref", {"$dynamicRef": url}),
        ("recursive-ref", {"$recursiveRef": url}),
        ("nested-property", {"type": "object", "properties": {"a": {"$ref": url}}}),
        ("nested-items", {"type": "array", "items": {"$ref": targets["file"]}}),
        ("nested-anyof", {"anyOf": [{"type": "string"}, {"$ref": url}]}),
        ("nested-allof-deep", {"allOf": [{"not": {"oneOf": [{"$ref": targets["file"]}]}}]}),
        ("defs", {"$defs": {"x": {"$ref": url}}, "$ref": "#/$defs/x"}),
        (
            "definitions",
            {"definitions": {"x": {"$ref": targets["file"]}}, "properties": {"a": {"$ref": "#/definitions/x"}}},
        ),
        ("if-then-else", {"if": {"type": "string"}, "then": {"$ref": url}, "else": {"$ref": targets["file"]}}),
        ("prefix-items", {"type": "array", "prefixItems": [{"$ref": url}]}),
        ("id-base-then-relative", {"$id": f"http://127.0.0.1:{hanging}/", "$ref": "other.json"}),
        ("id-file-base", {"$id": secret.parent.as_uri() + "/", "$ref": secret.name}),
        ("nested-id", {"properties": {"a": {"$id": f"http://127.0.0.1:{answering}/x/", "$ref": "schema.json"}}}),
        ("id-url-with-fragment-ref", {"$ref": f"http://127.0.0.1:{hanging}/#/$defs/x"}),
    ]
    return cases


def places(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(where, request fields, the param the 400 names) for each place a request carries a schema."""
    function = {"type": "function", "name": "lookup", "parameters": schema}
    return [
        ("tool", {"tools": [function]}, "tools[0].parameters"),
        ("strict-tool", {"tools": [{**function, "strict": True}]}, "tools[0].parameters"),
        (
            "namespace",
            {
                "tools": [
                    {"type": "function", "name": "a", "parameters": {"type": "object"}},
                    {"type": "function", "name": "b"},
                    {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "c"}, function]},
                ]
            },
            "tools[2].tools[1].parameters",
        ),
        (
            "text-format",
            {"text": {"format": {"type": "json_schema", "name": "out", "schema": schema}}},
            "text.format.schema",
        ),
    ]


def probes(secret: Path, answering: Listener, hanging: Listener, model: str) -> Iterator[tuple[str, Any, str]]:
    """(path, body, param of the 400) for every reference, in every place, on create (JSON, stream) and
    input_tokens."""
    for _name, schema in references(secret, answering.port, hanging.port):
        for _where, fields, param in places(schema):
            body = {"model": model, "input": "hi", **fields}
            yield "/v1/responses", body, param
            yield "/v1/responses", {**body, "stream": True}, param
            yield "/v1/responses/input_tokens", body, param


def _refused(response: httpx.Response, param: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    assert SECRET not in response.text


def _secret(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"type": "string", "description": SECRET}), encoding="utf-8")
    return secret


async def test_no_reference_is_followed_scripted(make_app, tmp_path: Path, listeners) -> None:
    answering, hanging = listeners
    app = await make_app([scripted("chat", {"text": "Hello."})])
    sent = 0
    for path, body, param in probes(_secret(tmp_path), answering, hanging, "chat"):
        _refused(await app.http.post(path, json=body, headers=AUTH), param)
        sent += 1
    assert sent > 300
    assert answering.accepted == 0 and hanging.accepted == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_no_reference_is_followed_upstreams(make_app, tmp_path: Path, listeners, kind: str) -> None:
    answering, hanging = listeners
    upstreams = Upstreams()
    try:
        fake = await upstreams.start(kind)
        app = await make_app([entry(kind, fake)])
        for path, body, param in probes(_secret(tmp_path), answering, hanging, "gpt-4.1"):
            _refused(await app.http.post(path, json=body, headers=AUTH), param)
        # Refused before any model ran: the upstream was never asked.
        assert fake.requests == []
        assert answering.accepted == 0 and hanging.accepted == 0
    finally:
        await upstreams.aclose()


class OtherTenant(threading.Thread):
    """A second tenant asking for answers until stopped, on its own connection."""

    def __init__(self, live: Any, model: str) -> None:
        super().__init__(daemon=True)
        self._client = live.client(KEY_B)
        self._model = model
        self.stop = threading.Event()
        self.served = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                response = self._client.responses.create(model=self._model, input="hello")
                assert response.status == "completed"
                self.served += 1
        except BaseException as exc:  # reported to the test thread
            self.failure = exc


def test_another_tenant_is_served_while_references_are_refused(live_server, tmp_path: Path, listeners) -> None:
    """On a real server: requests naming a listener that never answers, while another tenant asks."""
    answering, hanging = listeners
    live = live_server([scripted("chat", {"text": "Hello."})])
    secret = _secret(tmp_path)
    hanging_only = [
        probe for probe in probes(secret, answering, hanging, "chat") if str(hanging.port) in json.dumps(probe[1])
    ]
    other = OtherTenant(live, "chat")
    other.start()
    try:
        with httpx.Client(base_url=live.server.base_url, headers=AUTH, timeout=30) as http:
            for path, body, param in hanging_only[:40]:
                _refused(http.post(path, json=body), param)
            # The other tenant is answered before the hostile requests end (each waits for it once).
            while other.served == 0 and other.failure is None:
                _refused(http.post(hanging_only[0][0], json=hanging_only[0][1]), hanging_only[0][2])
    finally:
        other.stop.set()
        other.join()
    assert other.failure is None and other.served >= 1
    assert answering.accepted == 0 and hanging.accepted == 0


async def test_local_references_still_work(make_app) -> None:
    app = await make_app([scripted("chat", {"tool_calls": [{"name": "lookup", "arguments": {"a": {"b": "x"}}}]})])
    parameters = {
        "type": "object",
        "$defs": {"inner": {"$anchor": "inner", "type": "object", "properties": {"b": {"type": "string"}}}},
        "properties": {"a": {"$ref": "#/$defs/inner"}, "c": {"$ref": "#inner"}},
        "required": ["a"],
    }
    response = await app.client().responses.create(
        model="chat",
        input="hi",
        tools=[{"type": "function", "name": "lookup", "parameters": parameters, "strict": False}],
    )
    assert response.output[0].type == "function_call"
    assert json.loads(response.output[0].arguments) == {"a": {"b": "x"}}


async def test_a_dollar_schema_is_never_fetched(make_app, listeners) -> None:
    """`$schema` picks nothing: the meta-schema is 2020-12's whatever it names, and it is accepted."""
    answering, hanging = listeners
    app = await make_app([scripted("chat", {"text": '{"a": "x"}'})])
    for url in (f"http://127.0.0.1:{hanging.port}/meta", "http://json-schema.org/draft-07/schema#"):
        schema = {"$schema": url, "type": "object", "properties": {"a": {"type": "string"}}}
        response = await app.client().responses.create(
            model="chat",
            input="hi",
            tools=[{"type": "function", "name": "f", "parameters": schema}],
            text={"format": {"type": "json_schema", "name": "o", "schema": schema}},
        )
        assert response.status == "completed"
    assert answering.accepted == 0 and hanging.accepted == 0
