# Resolves host names (DNS exfiltration and network recon; classic).
import socket

for how in (lambda: socket.getaddrinfo("localhost", 80), lambda: socket.gethostbyname("example.com"),
            lambda: socket.gethostname()):
    try:
        print(how())
    except Exception as e:
        print("->", type(e).__name__, e)
