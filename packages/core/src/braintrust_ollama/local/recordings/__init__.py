"""Recorded Ollama traffic for `braintrust-ollama demo` (see NOTICE.md for its origin)."""
