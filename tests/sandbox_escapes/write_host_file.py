# Writes host files: the test's marker path, /tmp, the working directory (persistence, tampering; classic).
import os

for path in ("{{MARKER}}", "/tmp/openmuse-sandbox-escape", "escape.txt"):
    try:
        with open(path, "w") as f:
            f.write("escaped")
        print("wrote", path, os.path.exists(path))
    except Exception as e:
        print(path, "->", type(e).__name__, e)
