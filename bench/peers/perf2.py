"""The talk's perf2 client, bounded: one connection sending b'1' (no newline,
as the talk's client does) and waiting for each answer, counting requests;
a second thread prints the count every second. For bench/compare.sh, which
sets how long it runs, and for comparing fib_perf's one-connection figures
with a client of the talk's kind.
Usage: python3 perf2.py HOST:PORT SECONDS    prints "N req/s" at the end"""
import socket
import sys
import threading
import time


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    seconds = float(sys.argv[2])
    sock = socket.create_connection((host, int(port)))
    count = 0
    stop = threading.Event()

    def monitor():
        last = 0
        while not stop.wait(1):
            print(count - last, "reqs/sec", file=sys.stderr)
            last = count

    threading.Thread(target=monitor, daemon=True).start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sock.send(b"1")
        sock.recv(100)
        count += 1
    stop.set()
    print(f"{count / seconds:.1f} req/s")


main()
