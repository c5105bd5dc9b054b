# Signals the process that started it (kills the assistant or the test runner; classic).
import os
import signal

for how in (lambda: os.kill(os.getppid(), signal.SIGKILL), lambda: os.kill(1, signal.SIGTERM),
            lambda: os.killpg(0, signal.SIGKILL)):
    try:
        print(how())
    except Exception as e:
        print("->", type(e).__name__, e)
