# Allocates 10 GB at once (classic memory bomb).
# expect: fail
x = bytearray(10**10)
print(len(x))
