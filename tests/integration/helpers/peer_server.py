"""Accept TCP connections on ADDR PORT and answer each with the peer address it saw.

Prints 'listening' once bound, serves COUNT connections, then exits (never runs forever:
a timeout ends it)."""
import socket
import sys

addr, port = sys.argv[1], int(sys.argv[2])
count = int(sys.argv[3]) if len(sys.argv) > 3 else 1
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((addr, port))
srv.listen(8)
srv.settimeout(30)
print("listening", flush=True)
for _ in range(count):
    conn, peer = srv.accept()
    conn.sendall(("peer=%s\n" % peer[0]).encode())
    conn.close()
