"""The Responses engine: context, the one event builder, the fold, tool validation, the service."""
