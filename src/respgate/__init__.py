"""respgate: a self-hosted server and gateway for OpenAI's Responses API."""

__version__ = "0.1.0"
