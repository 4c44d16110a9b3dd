"""The talk's threaded server, as a peer for bench/compare.sh: a thread per
connection, the same recursive fib (n <= 2 base case) and our protocol:
newline-terminated requests, or bare digits with no newline from a client
that has never sent one (the talk's perf clients). Runs on CPython and PyPy.
Usage: python3 fib_threads.py HOST:PORT"""
import socket
import sys
import threading


def fib(n):
    if n <= 2:
        return 1
    return fib(n - 1) + fib(n - 2)


def answer(request):
    text = request.strip()
    if not text.isdigit() or int(text) > 45:
        return ('error: "%s" is not a number from 0 to 45\n' % text.decode(errors="replace")).encode()
    n = int(text)
    return b"%d\n" % (fib(n) if n > 0 else 0)


def handle(client):
    pending, saw_newline = b"", False
    with client:
        while True:
            data = client.recv(4096)
            if not data:
                return
            pending += data
            out = []
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                saw_newline = True
                if line.strip():
                    out.append(answer(line))
            if not saw_newline and pending.strip():
                out.append(answer(pending))
                pending = b""
            if out:
                client.sendall(b"".join(out))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: fib_threads.py HOST:PORT")
    host, port = sys.argv[1].rsplit(":", 1)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, int(port)))
    server.listen(1024)
    while True:
        client, _ = server.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handle, args=(client,), daemon=True).start()


if __name__ == "__main__":
    main()
