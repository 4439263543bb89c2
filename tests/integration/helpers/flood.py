"""Open many TCP connections and keep them: flood.py HOST PORT COUNT [SOURCE] [--tls].

Bare connections send nothing (no TLS handshake, no bytes); with --tls each finishes a TLS
handshake and then stays silent. Prints one JSON line when all connects were tried
({"opened", "failed"}), then, each time stdin gets a line, how many the server has closed
so far ({"closed", "open"}). Runs until stdin closes."""
import json
import select
import socket
import ssl
import sys


def main(argv):
    host, port, count = argv[1], int(argv[2]), int(argv[3])
    source = argv[4] if len(argv) > 4 and not argv[4].startswith("--") else None
    tls = "--tls" in argv
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    socks, failed = [], 0
    for _ in range(count):
        s = socket.socket()
        s.settimeout(3)
        try:
            if source:
                s.bind((source, 0))
            s.connect((host, port))
            if tls:
                s = context.wrap_socket(s)
            socks.append(s)
        except (OSError, ssl.SSLError):
            failed += 1
            s.close()
    print(json.dumps({"opened": len(socks), "failed": failed}), flush=True)
    for _line in sys.stdin:
        closed = 0
        for s in socks:
            if s.fileno() < 0:
                closed += 1
                continue
            poller = select.poll()
            poller.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
            if poller.poll(0):
                try:
                    s.setblocking(False)
                    data = s.recv(1)
                except ssl.SSLWantReadError:
                    continue
                except (OSError, ssl.SSLError):
                    data = b""
                if not data:
                    s.close()
                    closed += 1
        print(json.dumps({"closed": closed, "open": len(socks) - closed}), flush=True)


if __name__ == "__main__":
    main(sys.argv)
