# Loads libc through ctypes and calls system() (smolagents issue #2094: sandbox escape via ctypes).
try:
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    print(libc.system(b"touch {{MARKER}}"))
except Exception as e:
    print("ctypes ->", type(e).__name__, e)
try:
    import _ctypes

    print(_ctypes.dlopen("libc.so.6"))
except Exception as e:
    print("_ctypes ->", type(e).__name__, e)
