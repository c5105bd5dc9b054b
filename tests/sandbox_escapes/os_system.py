# Runs a host command with os.system / os.popen / os.exec* to create the test's marker file (classic).
import os

for how in (lambda: os.system("touch {{MARKER}}"), lambda: os.popen("touch {{MARKER}}").read(),
            lambda: os.execv("/bin/sh", ["sh", "-c", "touch {{MARKER}}"])):
    try:
        print(how())
    except Exception as e:
        print("->", type(e).__name__, e)
