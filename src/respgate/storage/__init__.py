"""Where responses live: the store protocol and its SQLAlchemy implementation."""
