"""The health profile (``check.py``) and its reviewed red-flag rules (``data/redflags.yaml``)."""
