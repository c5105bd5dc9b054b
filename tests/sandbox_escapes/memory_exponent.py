# Builds an astronomically large integer (a one-line memory and CPU bomb).
# expect: fail
print(len(str(10 ** (10**12))))
