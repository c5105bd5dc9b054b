# Prints gigabytes to flood the caller's memory or disk (output capping; classic).
chunk = "A" * 1_000_000
while True:
    print(chunk)
