"""tests/e2e/fakehub.py - stand-ins for a hub, for CLI tests that need the hub to answer in a way
the real one cannot be made to on demand.

- FakeHub: an AgentHub served by this Python process (grpcio) on a free loopback port, answering
  with the functions a test gives it; it records every request it receives.
- SilentListener: a TCP port that accepts connections and never says a word (no HTTP/2
  SETTINGS), so a gRPC client's channel stays CONNECTING and no call is ever sent on it.

Not a test file (ctest runs test_*.py only). The CLI under test is still the real binary.
"""
import concurrent.futures
import socket
import threading

import grpc

import harness as H


class FakeHub:
    """with FakeHub(KillAgent=lambda req, ctx: ...) as hub: run_cli([..., "--hub", hub.addr]).

    Methods not given answer UNIMPLEMENTED (the generated servicer's default)."""

    def __init__(self, **methods):
        self.s = H.stubs()
        self.calls = []  # (method name, request), in arrival order
        self._lock = threading.Lock()
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=8))
        servicer = self.s.hub_grpc.AgentHubServicer()
        for name, fn in methods.items():
            setattr(servicer, name, self._recorded(name, fn))
        self.s.hub_grpc.add_AgentHubServicer_to_server(servicer, self.server)
        self.port = H.add_port(self.server, "127.0.0.1:0")
        self.server.start()

    def _recorded(self, name, fn):
        def handler(request, context):
            with self._lock:
                self.calls.append((name, request))
            return fn(request, context)
        return handler

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def requests(self, method):
        with self._lock:
            return [r for m, r in self.calls if m == method]

    def stop(self):
        self.server.stop(None).wait(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def wait_until_cancelled(context, timeout=60):
    """Blocks the handler until the client's deadline passes (or it cancels): a hub that got
    the request and has not answered in time."""
    done = threading.Event()
    if context.add_callback(done.set):
        done.wait(timeout)


class SilentListener:
    """Accepts TCP connections on a free loopback port and never reads or writes."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if self._stop:
                c.close()
                return
            self.conns.append(c)

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def close(self):
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            c.close()
        self.thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
