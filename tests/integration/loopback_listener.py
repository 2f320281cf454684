"""The listening half of the scripted servers (fake_smtp.py, fake_tls.py): a TCP socket on
loopback whose connections are each served by the subclass's `_serve(conn)` on a thread of
their own, started by `with` and closed when it ends. Standard library only."""

import socket
import threading


class LoopbackListener:
    def _listen(self, host="127.0.0.1", port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.running = False
        try:
            self.sock.close()
        except OSError:
            pass

    def _accepted(self):
        """Called for each connection before it is served (FakeSmtp counts them)."""

    def _accept(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._accepted()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        raise NotImplementedError
