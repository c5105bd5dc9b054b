# Reads the host's /etc/passwd by absolute path (the classic first probe of any code sandbox).
for path in ("/etc/passwd", "/etc/shadow", "/etc/hostname"):
    try:
        with open(path) as f:
            print(path, f.read()[:200])
    except Exception as e:
        print(path, "->", type(e).__name__, e)
