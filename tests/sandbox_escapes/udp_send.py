# Sends a UDP datagram to the test's port (a listener-less exfiltration path; classic).
import socket

try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"escaped", ("127.0.0.1", int("{{PORT}}")))
    print("sent")
except Exception as e:
    print("sendto ->", type(e).__name__, e)
