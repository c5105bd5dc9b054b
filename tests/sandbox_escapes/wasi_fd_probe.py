# Probes file descriptors: WASI preopens live at fd 3 and up, stdin at 0 (capability leak; WASI-specific).
import os

for fd in range(0, 12):
    try:
        print(fd, os.fstat(fd), os.read(fd, 100) if fd not in (1, 2) else "")
    except Exception as e:
        print(fd, "->", type(e).__name__, e)
