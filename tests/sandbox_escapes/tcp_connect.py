# Opens a TCP connection to a port the test listens on at 127.0.0.1 (exfiltration, local services; classic).
import socket

try:
    s = socket.create_connection(("127.0.0.1", int("{{PORT}}")), timeout=2)
    s.sendall(b"escaped")
    print("connected")
except Exception as e:
    print("create_connection ->", type(e).__name__, e)
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", int("{{PORT}}")))
    print("connected")
except Exception as e:
    print("socket.connect ->", type(e).__name__, e)
