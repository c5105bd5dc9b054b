# Reads this project's own files by relative path, from whatever the working directory is (classic cwd leak).
PATHS = ("pyproject.toml", "../pyproject.toml", "../../pyproject.toml", "src/openmuse/__init__.py",
         "job.json")
for path in PATHS:
    try:
        with open(path) as f:
            print(path, f.read()[:300])
    except Exception as e:
        print(path, "->", type(e).__name__, e)
