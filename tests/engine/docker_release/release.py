"""A stand-in release for the docker-runtime tests: `serve`, `fail` or `stubborn`.

serve     answers GET /healthz with 200 on $PORT (127.0.0.1: the container shares the
          host's network), until SIGTERM
fail      prints why it cannot run and exits with status 3, as a misconfigured bot does
stubborn  serves like `serve` but ignores SIGTERM, so only SIGKILL stops it
"""

import http.server
import os
import signal
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
    server = http.server.HTTPServer(("127.0.0.1", port), Health)
    print("serving on", port, flush=True)
    server.serve_forever()


def main(mode: str) -> None:
    if mode == "fail":
        print("bad config: no token", flush=True)
        sys.exit(3)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring SIGTERM", flush=True)
    serve()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "serve")
