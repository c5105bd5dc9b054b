"""The HTTP server: OpenAI-compatible API, conversation store, web app."""
