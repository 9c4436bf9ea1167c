"""`provider: local`: a GGUF model served by a supervised llama-server, prompted and parsed by respgate.

Tool calling with small models (measurements in the package docstring):
- `required` (or a named tool): one grammar-forced pass that can only produce `<tool_call>` blocks.
- `auto`: a free pass streams prose at once; if the model starts writing a call to a known tool
  (tagged, fenced or bare JSON), that pass is stopped and a grammar-forced pass continues from the
  prose already shown. Small models write calls in ```json fences with wrong arguments; the forced
  pass gets them right.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from respgate.config import ConfigError, ModelEntry
from respgate.protocol.errors import InvalidRequest, UpstreamError
from respgate.providers.base import (
    Delta,
    Finish,
    FinishReason,
    FunctionSpec,
    ModelCall,
    TextDelta,
    Usage,
)
from respgate.providers.local.client import LlamaClient
from respgate.providers.local.grammar import tool_call_schema, tool_calls_grammar
from respgate.providers.local.model import (
    PRESETS,
    LocalSetupError,
    VerifiedFiles,
    assemble_preset,
    check_gguf,
    download_hf_file,
)
from respgate.providers.local.parse import CallIntentDetector, ToolCallParser
from respgate.providers.local.server import LlamaServer, ServerOptions, find_llama_server
from respgate.providers.local.settings import LocalSettings
from respgate.providers.local.template import (
    ChatTemplate,
    chat_messages,
    facts_messages,
    template_tools,
)


@dataclass(slots=True)
class _Tally:
    """Token counts over the passes of one answer, from llama-server's own numbers."""

    input_tokens: int | None = None
    cached_tokens: int = 0
    output_tokens: int = 0
    _pass_output: int = 0
    stop_type: str = ""

    def new_pass(self) -> None:
        self.output_tokens += self._pass_output
        self._pass_output = 0
        self.stop_type = ""

    def update(self, chunk: dict[str, Any]) -> None:
        if self.input_tokens is None and "tokens_evaluated" in chunk:
            self.input_tokens = int(chunk["tokens_evaluated"])
            self.cached_tokens = int(chunk.get("timings", {}).get("cache_n", 0))
        self._pass_output = int(chunk.get("tokens_predicted", self._pass_output))
        if chunk.get("stop"):
            self.stop_type = str(chunk.get("stop_type", ""))

    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens or 0,
            output_tokens=self.output_tokens + self._pass_output,
            cached_tokens=min(self.cached_tokens, self.input_tokens or 0),
        )


def _context_error(limit: int, used: int) -> InvalidRequest:
    return InvalidRequest(
        f"Your input exceeds the context window of this model ({used} tokens for a window of {limit}). "
        "Please adjust your input and try again.",
        param="input",
        code="context_length_exceeded",
    )


def _drop_oldest(messages: list[dict[str, Any]]) -> bool:
    """Remove the oldest non-system turn (with the tool results that belong to it)."""
    for index, message in enumerate(messages[:-1]):
        if message["role"] != "system":
            del messages[index]
            while index < len(messages) - 1 and messages[index]["role"] == "tool":
                del messages[index]
            return True
    return False


def _compact(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return arguments


def _latest_round(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (name, compact arguments) of the calls made since the last user message."""
    calls: list[tuple[str, str]] = []
    for item in reversed(items):
        if item.get("type", "message") == "message" and item.get("role") == "user":
            break
        if item.get("type") == "function_call":
            calls.append((str(item.get("name")), _compact(str(item.get("arguments", "")))))
    return calls


class LocalProvider:
    """Implements `Provider` and `ManagedProvider` for one local model."""

    def __init__(self, *, settings: LocalSettings) -> None:
        self._settings = settings
        self._client = LlamaClient(token_timeout=settings.token_timeout)
        self._server: LlamaServer | None = None
        self._template: ChatTemplate | None = None
        self.model_path: Path | None = None
        self.context_window = 0

    @classmethod
    def from_entry(cls, entry: ModelEntry) -> LocalProvider:
        """Settings from a config entry; an entry named after a preset selects that preset."""
        raw = entry.provider_settings()
        if "preset" not in raw and entry.target in PRESETS:
            raw["preset"] = entry.target
        try:
            return cls(settings=LocalSettings.model_validate(raw))
        except ValidationError as exc:
            raise ConfigError(f"model {entry.name!r} (provider local): {exc}") from exc

    @property
    def server(self) -> LlamaServer:
        if self._server is None:
            raise UpstreamError("the local model provider was not started", retryable=False)
        return self._server

    @property
    def base_url(self) -> str:
        """Where llama-server listens now (it moves to a new port when restarted)."""
        return self._client.base_url

    def _resolve_model(self) -> Path:
        settings = self._settings
        verified = VerifiedFiles(record=settings.cache_dir / "verified.json")
        if settings.model_path is not None:
            return check_gguf(settings.model_path.expanduser(), sha256=settings.model_sha256, verified=verified)
        if settings.hf_file is not None:
            path = download_hf_file(settings.hf_file, cache_dir=settings.cache_dir)
            return check_gguf(path, sha256=settings.model_sha256, verified=verified)
        return assemble_preset(PRESETS[settings.preset], cache_dir=settings.cache_dir, verified=verified)

    async def start(self) -> None:
        settings = self._settings
        self.model_path = await asyncio.to_thread(self._resolve_model)
        binary = find_llama_server(settings.llama_server)
        options = ServerOptions(
            binary=binary,
            model=self.model_path,
            threads=settings.threads,
            ctx_size=settings.ctx_size,
            parallel=settings.parallel,
            kv_unified=settings.kv_unified,
            extra_args=tuple(settings.extra_args),
            log_path=settings.log_dir / f"llama-server-{self.model_path.stem}.log",
            startup_timeout=settings.startup_timeout,
        )
        self._server = LlamaServer(options=options, client=self._client)
        await self._server.start()
        props = await self._client.props()
        self.context_window = int(props["default_generation_settings"]["n_ctx"])
        source = (
            settings.chat_template.read_text(encoding="utf-8")
            if settings.chat_template is not None
            else props.get("chat_template")
        )
        if not source:
            await self.aclose()
            raise LocalSetupError(
                f"model {self.model_path} carries no chat template; set chat_template to a jinja file"
            )
        self._template = ChatTemplate(
            source=source, bos_token=props.get("bos_token") or "", eos_token=props.get("eos_token") or ""
        )

    async def aclose(self) -> None:
        if self._server is not None:
            await self._server.stop()
        await self._client.aclose()

    async def stream(self, call: ModelCall) -> AsyncIterator[Delta]:
        """Generate one answer; a crashed or hung engine is restarted, and a request that had
        produced nothing yet is retried once on the fresh engine."""
        server = self.server
        for attempt in (1, 2):
            produced = False
            run = self._run(call)
            try:
                async for delta in run:
                    produced = True
                    yield delta
                return
            except UpstreamError as exc:
                restarted = await server.recover(str(exc), force=exc.code == "upstream_timeout")
                if produced or not restarted or attempt == 2:
                    raise
            finally:
                await run.aclose()

    async def _prompt(
        self, call: ModelCall, tools: list[dict[str, Any]], *, answer_from_facts: bool = False
    ) -> str:
        """The rendered prompt, checked against (or, with truncation "auto", fitted to) the window."""
        assert self._template is not None
        messages = chat_messages(call)
        if answer_from_facts:
            messages = facts_messages(messages) or messages
        limit = self.context_window
        reserve = min(call.max_output_tokens or 1024, limit // 4)
        while True:
            prompt = self._template.render(messages, tools=tools)
            # A token is at least one byte, so a prompt shorter than the window in bytes always fits.
            if len(prompt.encode()) < limit - reserve:
                return prompt
            used = await self._client.count_tokens(prompt)
            if call.truncation == "auto":
                if used <= limit - reserve:
                    return prompt
                if not _drop_oldest(messages):
                    raise _context_error(limit, used)
            elif used >= limit:
                raise _context_error(limit, used)
            else:
                return prompt

    def _sampling(self, call: ModelCall) -> dict[str, Any]:
        temperature = call.temperature if call.temperature is not None else self._settings.default_temperature
        sampling: dict[str, Any] = {"temperature": temperature, "timings_per_token": True}
        if call.top_p is not None:
            sampling["top_p"] = call.top_p
        return sampling

    def _max_calls(self, call: ModelCall) -> int:
        # A single forced tool is a named tool choice: one call, as the Responses API makes.
        forced_one = call.tool_choice == "required" and len(call.callable_tools()) == 1
        if not call.parallel_tool_calls or forced_one:
            return 1
        return min(call.max_tool_calls or self._settings.max_calls, self._settings.max_calls)

    async def _run(self, call: ModelCall) -> AsyncGenerator[Delta, None]:
        await self.server.ensure_running()
        tools = call.callable_tools()
        tally = _Tally()
        budget = call.max_output_tokens
        base: dict[str, Any] = {"n_predict": budget or -1, **self._sampling(call)}
        if tools and call.tool_choice == "required":
            prompt = await self._prompt(call, template_tools(tools))
            parser = ToolCallParser(max_calls=self._max_calls(call))
            async for delta in self._forced({**base, "prompt": prompt}, tools, parser, tally):
                yield delta
        elif tools and (call.text_format or {}).get("type") not in ("json_schema", "json_object"):
            async for delta in self._auto(call, tools, base, tally):
                yield delta
        else:
            prompt = await self._prompt(call, [])
            async for delta in self._free({**base, "prompt": prompt}, call, tally, detector=None):
                yield delta
        yield tally.usage()
        reason: FinishReason = "length" if tally.stop_type == "limit" else "stop"
        yield Finish(reason)

    async def _auto(
        self, call: ModelCall, tools: list[FunctionSpec], base: dict[str, Any], tally: _Tally
    ) -> AsyncGenerator[Delta, None]:
        """Free pass first; a call-shaped start switches to a forced pass or to a tool-less one."""
        names = {tool.name for tool in tools}
        # Offering an explicit "reply in text" tool makes small models answer plain questions in
        # prose instead of calling an unrelated tool (measured: see the package docstring).
        reply = FunctionSpec(
            name=next(name for name in ("reply", "reply_to_user", "respond_in_text") if name not in names),
            description="Answer the user directly in plain text when none of the other tools is needed.",
            parameters={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
            strict=False,
        )
        prompt = await self._prompt(call, template_tools([*tools, reply]))
        detector = CallIntentDetector(tool_names=names)
        shown: list[str] = []
        async for delta in self._free({**base, "prompt": prompt}, call, tally, detector=detector):
            shown.append(delta.text)
            yield delta
        if detector.intent not in ("call", "answer"):
            return
        if (rest := self._remaining(base, tally)) is None:
            return
        if detector.intent == "call":
            continued = {**rest, "prompt": prompt + "".join(shown)}
            parser = ToolCallParser(max_calls=self._max_calls(call), seen=_latest_round(call.items))
            async for call_delta in self._forced(continued, tools, parser, tally):
                yield call_delta
            if parser.done or tally.stop_type == "limit":
                return
            # Every call repeated one already answered: the model has what it needs, so answer.
            if (rest := self._remaining(base, tally)) is None:
                return
        plain = await self._prompt(call, [], answer_from_facts=True)
        continued = {**rest, "prompt": plain + "".join(shown)}
        async for delta in self._free(continued, call, tally, detector=None):
            yield delta

    @staticmethod
    def _remaining(base: dict[str, Any], tally: _Tally) -> dict[str, Any] | None:
        """`base` for the next pass with the tokens left of `max_output_tokens`; None (and a
        "length" finish) when none are left."""
        tally.new_pass()
        if base["n_predict"] < 0:
            return base
        left = base["n_predict"] - tally.output_tokens
        if left <= 0:
            tally.stop_type = "limit"
            return None
        return {**base, "n_predict": left}

    async def _free(
        self,
        payload: dict[str, Any],
        call: ModelCall,
        tally: _Tally,
        *,
        detector: CallIntentDetector | None,
    ) -> AsyncGenerator[TextDelta, None]:
        """An unconstrained pass (but for `text.format`); with a detector it stops at a call."""
        text_format = call.text_format or {}
        if text_format.get("type") == "json_schema":
            payload = {**payload, "json_schema": text_format.get("schema") or {}}
        elif text_format.get("type") == "json_object":
            payload = {**payload, "json_schema": {"type": "object"}}
        generation = self._client.complete(payload)
        try:
            async for chunk in generation:
                tally.update(chunk)
                content = str(chunk.get("content", ""))
                text = detector.feed(content) if detector is not None else content
                if text:
                    yield TextDelta(text)
                if detector is not None and detector.intent in ("call", "answer"):
                    return
        finally:
            await generation.aclose()
        if detector is not None and (rest := detector.flush()):
            yield TextDelta(rest)

    async def _forced(
        self, payload: dict[str, Any], tools: list[FunctionSpec], parser: ToolCallParser, tally: _Tally
    ) -> AsyncIterator[Delta]:
        """A pass whose grammar allows nothing but `<tool_call>` blocks for `tools`."""
        call_grammar = await self._client.schema_grammar(tool_call_schema(tools))
        grammar = tool_calls_grammar(call_grammar, max_calls=parser.max_calls)
        generation = self._client.complete({**payload, "grammar": grammar})
        try:
            async for chunk in generation:
                tally.update(chunk)
                for delta in parser.feed(chunk.get("content", "")):
                    yield delta
                if parser.should_stop:
                    break
        finally:
            await generation.aclose()
        for delta in parser.finish():
            yield delta
