"""The local model provider: llama.cpp's llama-server plus a GGUF model, prompted and parsed by respgate.

Package notes (measured with Qwen2.5-Coder-0.5B-Instruct Q4_K_M, greedy):
- Unconstrained, the model writes calls in ```json fences (often with wrong arguments) and, with
  tools in the prompt, tries to call one for almost any question. llama-server's own tool parsing
  finds no calls in that output, so respgate renders the template and parses output itself.
- Grammar-forced `<tool_call>` blocks (grammar A, `grammar.py`) give exactly the seed's four calls.
- `auto`: a free pass over the prompt with the tools plus a synthetic "reply in text" tool. With
  that extra tool the model answers plain questions in prose (13 of 14 probe prompts decided
  right, against 8-11 for asking the model a separate yes/no or pick-a-tool question). A start
  that names a known tool switches to the forced pass; call-shaped JSON naming no known tool
  switches to a tool-less prose pass.
- After tool results the model tends to repeat its calls; repeats of answered calls are dropped
  and the answer pass restates the question with the results as facts, which it then answers.
"""

from respgate.providers.local.model import PRESETS, LocalSetupError
from respgate.providers.local.provider import LocalProvider
from respgate.providers.local.settings import LocalSettings

__all__ = ["PRESETS", "LocalProvider", "LocalSettings", "LocalSetupError"]
