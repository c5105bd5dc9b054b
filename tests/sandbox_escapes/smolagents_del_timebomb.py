# Defines __del__ so code runs after the run ends, at GC or interpreter exit (smolagents issue #2395).
import os


class Bomb:
    def __del__(self):
        try:
            os.system("touch {{MARKER}}")
        except Exception:
            pass
        print(open("{{CANARY}}").read())


keep = Bomb()
print("planted")
