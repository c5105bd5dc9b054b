"""llama-cpp-python's OpenAI-compatible server, loaded with the local engine's safe buffer types.

``python -m openmuse.engines.llama_server --model X.gguf …`` takes every argument of
``python -m llama_cpp.server``. llama-cpp-python's ``Llama`` (and so its server) has no setting
for llama.cpp's extra weight buffer types, and a build with AMX crashes in them on the first
request (engines/cpu.py). This wrapper makes the same choice as the local engine
(``MUSE_EXTRA_BUFFERS``: auto, on or off), prints it on stderr, and starts the server. The
tests and benchmarks that need a real OpenAI-compatible server start it this way; a user who
serves a GGUF with llama-cpp-python on such a CPU can too.
"""

from __future__ import annotations

import os
import sys

from . import cpu


def main() -> None:
    import llama_cpp.llama_cpp as low
    from llama_cpp.server.__main__ import main as serve

    setting = os.environ.get("MUSE_EXTRA_BUFFERS", "auto").strip().lower()
    if setting not in ("auto", "on", "off"):
        sys.exit(f"error: MUSE_EXTRA_BUFFERS must be auto, on or off, not {setting!r}")
    choice = cpu.choose_extra_buffers(setting, cpu.system_info())  # type: ignore[arg-type]
    defaults = low.llama_model_default_params

    def model_params():
        params = defaults()
        params.use_extra_bufts = choice.use_extra
        return params

    # Llama.__init__ starts from llama_model_default_params(); every model it loads gets the choice.
    low.llama_model_default_params = model_params
    print(f"openmuse: extra weight buffers {'on' if choice.use_extra else 'off'} ({choice.reason})",
          file=sys.stderr, flush=True)
    serve()


if __name__ == "__main__":
    main()
