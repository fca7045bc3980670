"""A real SMTP server on loopback for the tests: stores each received message as a file.

Usage: python3 smtp_sink.py DIR  -- prints "SMTP_READY <port>" once listening.
"""
import os, socket, sys, time
from aiosmtpd.controller import Controller


class Store:
    def __init__(self, d):
        self.d = d
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        rcpt = envelope.rcpt_tos[0].replace("/", "_")
        path = os.path.join(self.d, f"{time.time():.6f}-{self.n}-{rcpt}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        return "250 OK"


def main():
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    for _ in range(20):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        c = Controller(Store(d), hostname="127.0.0.1", port=port)
        try:
            c.start()
            break
        except OSError:
            continue
    else:
        sys.exit("no free port for the SMTP sink")
    print(f"SMTP_READY {port}", flush=True)
    try:
        sys.stdin.read()  # exit when the test closes our stdin or kills us
    finally:
        c.stop()


if __name__ == "__main__":
    main()
