"""Braintrust tracing for FastAPI / Starlette: one trace per HTTP request.

app.add_middleware(BraintrustMiddleware)
"""

from braintrust_ollama_fastapi.middleware import BraintrustMiddleware

__all__ = ["BraintrustMiddleware"]
