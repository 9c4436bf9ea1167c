"""Backends behind one contract: `stream(call) -> AsyncIterator[Delta]`."""
