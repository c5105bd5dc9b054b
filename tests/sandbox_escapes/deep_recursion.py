# Recurses without bound with the recursion limit raised (native stack overflow; classic).
import sys

sys.setrecursionlimit(10**8)


def f(n):
    return f(n + 1)


f(0)
