"""A stand-in release for the docker-runtime tests: `serve`, `fail`, `stubborn` or `probe`.

serve     answers GET /healthz with 200 on $PORT, on every interface of its container
          (a bridged container's port is published from there), until SIGTERM
fail      prints why it cannot run and exits with status 3, as a misconfigured bot does
stubborn  serves like `serve` but ignores SIGTERM, so only SIGKILL stops it
probe     tries to connect to each HOST:PORT given, prints "HOST:PORT open" or
          "HOST:PORT closed" for each, then serves like `serve`
"""

import http.server
import os
import signal
import socket
import sys


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def serve() -> None:
    port = int(os.environ["PORT"])
    server = http.server.HTTPServer(("0.0.0.0", port), Health)
    print("serving on", port, flush=True)
    server.serve_forever()


def probe(addresses: list[str]) -> None:
    for address in addresses:
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
            print(address, "open", flush=True)
        except OSError:
            print(address, "closed", flush=True)


def main(mode: str, arguments: list[str]) -> None:
    if mode == "fail":
        print("bad config: no token", flush=True)
        sys.exit(3)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring SIGTERM", flush=True)
    if mode == "probe":
        probe(arguments)
    serve()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "serve", sys.argv[2:])
