# Runs a host command with subprocess to create the test's marker file (the direct route; classic).
import subprocess

for cmd in (["touch", "{{MARKER}}"], "touch {{MARKER}}"):
    try:
        print(subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True))
    except Exception as e:
        print("->", type(e).__name__, e)
