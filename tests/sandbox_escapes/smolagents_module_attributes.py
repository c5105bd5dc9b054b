# Reaches os through attributes of harmless modules, e.g. random._os (smolagents CVE-2025-5120).
import logging
import random
import shutil
import tempfile

for mod in (random._os, tempfile._os, shutil.os, logging.os):
    try:
        print(mod.system("touch {{MARKER}}"))
    except Exception as e:
        print(mod, "->", type(e).__name__, e)
try:
    print(logging.sys.modules["os"].popen("touch {{MARKER}}").read())
except Exception as e:
    print("sys.modules ->", type(e).__name__, e)
