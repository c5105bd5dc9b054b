# An endless busy loop, to hold a CPU forever (classic denial of service).
# expect: fail
while True:
    pass
