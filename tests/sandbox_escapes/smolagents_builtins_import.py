# Rebuilds __import__ via print.__self__ and a function's __globals__ (smolagents advisories, dunders).
for how in (lambda: print.__self__.__import__("os").system("touch {{MARKER}}"),
            lambda: (lambda: 0).__globals__["__builtins__"].__import__("subprocess").call(["touch",
                                                                                          "{{MARKER}}"]),
            lambda: __builtins__.__dict__["__import__"]("os").popen("cat {{CANARY}}").read()):
    try:
        print(how())
    except Exception as e:
        print("->", type(e).__name__, e)
