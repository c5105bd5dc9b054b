# Forks or spawns a process: os.fork, os.posix_spawn, multiprocessing, a thread (classic).
import os

try:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    print("forked", pid)
except Exception as e:
    print("fork ->", type(e).__name__, e)
try:
    print(os.posix_spawn("/bin/touch", ["touch", "{{MARKER}}"], {}))
except Exception as e:
    print("posix_spawn ->", type(e).__name__, e)
try:
    import multiprocessing

    p = multiprocessing.Process(target=print, args=("child",))
    p.start()
    p.join()
except Exception as e:
    print("multiprocessing ->", type(e).__name__, e)
try:
    import threading

    t = threading.Thread(target=print, args=("thread",))
    t.start()
    t.join()
except Exception as e:
    print("thread ->", type(e).__name__, e)
