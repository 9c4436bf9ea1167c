"""Fake upstreams: real HTTP servers on 127.0.0.1 speaking each provider's documented wire format.

```python
async with FakeChatCompletions() as fake:          # or FakeResponses, FakeAnthropic
    fake.enqueue(Reply(text="Hello", chunks=3), Failure(status=500))
    ...  # point a provider at fake.base_url; fake.requests holds what it received
```
Each request takes the next queued `Reply` (rendered as JSON, or as SSE when the body says
`"stream": true`), `Failure` (an HTTP error with the provider's error body) or `Fault` (a streamed
answer that breaks: reset, hang, garbage, cut short; see `fakes.faults`); `default` answers when the
queue is empty, which suits benchmarks.
"""

from fakes.anthropic import FakeAnthropic
from fakes.chat import FakeChatCompletions
from fakes.faults import Fault
from fakes.responses import FakeResponses
from fakes.script import Behaviour, Failure, FakeCall, Reply
from fakes.server import FakeUpstream, RecordedRequest

__all__ = [
    "Behaviour",
    "Failure",
    "FakeAnthropic",
    "FakeCall",
    "FakeChatCompletions",
    "FakeResponses",
    "FakeUpstream",
    "Fault",
    "RecordedRequest",
    "Reply",
]
