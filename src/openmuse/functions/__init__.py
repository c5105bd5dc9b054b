"""Function calling and structured output (OpenAI's ``tools``, ``tool_choice`` and
``response_format``): the request shapes checked (``spec.py``), the prompt format for engines
that take plain text (``prompt.py``) and the grammars that constrain the local engine's output
(``grammar.py``)."""

from .spec import Output, SpecError, Tool

__all__ = ["Output", "SpecError", "Tool"]
