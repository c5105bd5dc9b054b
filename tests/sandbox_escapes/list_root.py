# Lists the host's root folder and the working directory (reconnaissance before a file read; classic).
import glob
import os

for how in (lambda: os.listdir("/"), lambda: sorted(e.name for e in os.scandir(".")), lambda: glob.glob("/*"),
            lambda: os.listdir("/proc"), lambda: os.getcwd()):
    try:
        print(how())
    except Exception as e:
        print("->", type(e).__name__, e)
