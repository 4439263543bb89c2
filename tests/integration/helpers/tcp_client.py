"""Connect to ADDR PORT, print what the server says (at most 5 s)."""
import socket
import sys

sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print(sock.recv(200).decode().strip())
