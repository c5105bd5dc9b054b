# Grows a list of strings without end (a gradual memory bomb; classic).
# expect: fail
x = []
while True:
    x.append("A" * 1_000_000)
