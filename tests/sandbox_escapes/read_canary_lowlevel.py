# Reads the test's canary file through low-level routes: os.open, io.FileIO, traversal from / and . (classic).
import io
import os

for path in ("{{CANARY}}", "/../../{{CANARY}}", "./../../../../../../{{CANARY}}"):
    try:
        fd = os.open(path, os.O_RDONLY)
        print(path, os.read(fd, 300))
    except Exception as e:
        print(path, "os.open ->", type(e).__name__, e)
    try:
        print(path, io.FileIO(path).read(300))
    except Exception as e:
        print(path, "FileIO ->", type(e).__name__, e)
