"""A TCP proxy in front of the served simulator that a test can cut and bring back: what a
lost XAPI connection looks like to the daemon (a toolstack restart, a network fault).
``cut()`` resets every open connection and refuses new ones; ``restore()`` listens again
on the same port."""
import socket
import threading


class Cutter(object):
    def __init__(self, target):
        self.target = target          # (host, port) of the simulator
        self.port = None
        self._lock = threading.Lock()
        self._open = []               # sockets of live connections (both ends)
        self._listener = None
        self.restore()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def restore(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        thread = threading.Thread(target=self._accept, args=(listener,), name="cutter")
        thread.daemon = True
        thread.start()

    def cut(self):
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self._lock:
            conns, self._open = self._open, []
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):  # no Nagle: ~40 ms per call otherwise
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open.extend((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=_pump, args=(a, b), name="cutter-pump")
                thread.daemon = True
                thread.start()


def _pump(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
