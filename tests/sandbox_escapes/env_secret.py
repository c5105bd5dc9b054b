# Reads host environment variables, where API keys live: os.environ, getenv, /proc/self/environ (classic).
import os

print(dict(os.environ))
print(os.getenv("{{SECRET_NAME}}"))
for path in ("/proc/self/environ", "/proc/1/environ"):
    try:
        with open(path, "rb") as f:
            print(f.read()[:500])
    except Exception as e:
        print(path, "->", type(e).__name__, e)
