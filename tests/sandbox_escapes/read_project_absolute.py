# Reads the project's pyproject.toml and the test's canary file by absolute host path (classic).
import pathlib

for path in ("{{PROJECT}}/pyproject.toml", "{{CANARY}}"):
    try:
        print(path, pathlib.Path(path).read_text()[:300])
    except Exception as e:
        print(path, "->", type(e).__name__, e)
