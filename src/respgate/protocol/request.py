"""The `POST /v1/responses` request body (reference §2), validated once at the edge."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from respgate.protocol.items import InputItem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FunctionTool(_Open):
    type: Literal["function"]
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamespaceTool(_Open):
    """Function tools grouped under a name (Codex sends these); a call names its `namespace`."""

    type: Literal["namespace"]
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    tools: list[FunctionTool]


class OtherTool(_Open):
    """A tool type this server does not execute; rejected by the engine with a 400 naming it."""

    type: str


def _tool_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ("function", "namespace") else "other"


Tool = Annotated[
    Annotated[FunctionTool, Tag("function")]
    | Annotated[NamespaceTool, Tag("namespace")]
    | Annotated[OtherTool, Tag("other")],
    Discriminator(_tool_tag),
]


class ToolChoiceFunction(_Strict):
    type: Literal["function"]
    name: str


class AllowedToolRef(_Open):
    type: str
    name: str | None = None


class ToolChoiceAllowed(_Strict):
    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"]
    tools: list[AllowedToolRef]


class ToolChoiceOther(_Open):
    """A hosted-tool choice (`{"type": "web_search_preview"}` …); rejected by the engine."""

    type: str


def _choice_tag(value: Any) -> str:
    if isinstance(value, str):
        return "mode"
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ("function", "allowed_tools") else "other"


ToolChoice = Annotated[
    Annotated[Literal["none", "auto", "required"], Tag("mode")]
    | Annotated[ToolChoiceFunction, Tag("function")]
    | Annotated[ToolChoiceAllowed, Tag("allowed_tools")]
    | Annotated[ToolChoiceOther, Tag("other")],
    Discriminator(_choice_tag),
]


class FormatText(_Strict):
    type: Literal["text"]


class FormatJsonObject(_Strict):
    type: Literal["json_object"]


class FormatJsonSchema(_Strict):
    type: Literal["json_schema"]
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


TextFormat = Annotated[FormatText | FormatJsonObject | FormatJsonSchema, Field(discriminator="type")]


class TextConfig(_Strict):
    format: TextFormat = Field(default_factory=lambda: FormatText(type="text"))
    verbosity: Literal["low", "medium", "high"] | None = "medium"


class ReasoningConfig(_Open):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class StreamOptions(_Strict):
    include_obfuscation: bool | None = None


def _metadata_limits(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 16:
        raise ValueError(f"metadata: too many keys. Expected at most 16 keys, but got {len(value)}.")
    for key, item in value.items():
        if len(key) > 64:
            raise ValueError(f"metadata: key '{key[:70]}' is longer than 64 characters.")
        if len(item) > 512:
            raise ValueError(f"metadata: value of '{key}' is longer than 512 characters.")
    return value


# OpenAI's `Metadata`: at most 16 pairs, keys up to 64 characters, values up to 512 (responses, conversations).
Metadata = Annotated[dict[str, str], AfterValidator(_metadata_limits)]


def _no_penalty(value: float) -> float:
    if value != 0:
        raise ValueError("penalties are not supported by this server; send 0 or null.")
    return value


Penalty = Annotated[float, AfterValidator(_no_penalty)]


class ConversationRef(_Strict):
    id: str


Includable = Literal[
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
]


# Fields the Open Responses schema lets a client send as null, meaning "as if not sent".
_NULL_IS_ABSENT = ("model", "tools", "tool_choice")


class CreateResponse(_Strict):
    model: str
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    tools: list[Tool] = Field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool | None = None
    max_output_tokens: Annotated[int, Field(ge=16)] | None = None
    max_tool_calls: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    text: TextConfig | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    reasoning: ReasoningConfig | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    background: bool | None = None
    metadata: Metadata | None = None
    previous_response_id: str | None = None
    conversation: str | ConversationRef | None = None
    include: list[Includable] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    user: str | None = None
    safety_identifier: Annotated[str, Field(max_length=128)] | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: Literal["in_memory", "24h", "in-memory"] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast", "ultrafast"] | None = None
    prompt: dict[str, Any] | None = None

    # Newer fields real clients send that do not change the answer of a self-hosted model:
    # accepted and ignored (the README lists them); typed loosely on purpose.
    access_programs: Any = None
    background_options: Any = None
    context_management: Any = None
    image: Any = None
    moderation: Any = None
    prompt_cache_options: Any = None
    client_metadata: Any = None
    personality: Any = None
    # In the Open Responses schema, not in OpenAI's: null and 0 (no penalty) are accepted.
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(key in data and data[key] is None for key in _NULL_IS_ABSENT):
            return {key: value for key, value in data.items() if value is not None or key not in _NULL_IS_ABSENT}
        return data


class CountInputTokens(_Strict):
    """The `POST /v1/responses/input_tokens` body: the create fields that shape the model's input."""

    model: str | None = None
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation: str | ConversationRef | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    truncation: Literal["auto", "disabled"] | None = None
    parallel_tool_calls: bool | None = None
    personality: Any = None
