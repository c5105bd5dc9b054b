# Reads /proc and /dev of the process running it: cmdline, maps, mem, stdin (classic container recon).
PATHS = ("/proc/self/cmdline", "/proc/self/maps", "/proc/self/mem", "/proc/self/cwd/pyproject.toml",
         "/dev/stdin")
for path in PATHS:
    try:
        with open(path, "rb") as f:
            print(path, f.read(200))
    except Exception as e:
        print(path, "->", type(e).__name__, e)
