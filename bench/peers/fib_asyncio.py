"""The write-up's Python coroutine server, as a peer for bench/compare.sh: a
coroutine per connection on one asyncio event loop (a fair modern stand-in
for its select()-driven scheduler), every fib sent to a ProcessPoolExecutor
so that the loop never blocks; the same recursive fib (n <= 2 base case)
and our protocol: newline-terminated requests, or bare digits with no
newline from a client that has never sent one.
Usage: python3 fib_asyncio.py HOST:PORT"""
import asyncio
import sys
from concurrent.futures import ProcessPoolExecutor


def fib(n):
    if n <= 2:
        return 1
    return fib(n - 1) + fib(n - 2)


async def answer(pool, request):
    text = request.strip()
    if not text.isdigit() or int(text) > 45:
        return ('error: "%s" is not a number from 0 to 45\n' % text.decode(errors="replace")).encode()
    n = int(text)
    value = await asyncio.get_running_loop().run_in_executor(pool, fib, n) if n > 0 else 0
    return b"%d\n" % value


async def handle(pool, reader, writer):
    pending, saw_newline = b"", False
    try:
        while data := await reader.read(4096):
            pending += data
            out = []
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                saw_newline = True
                if line.strip():
                    out.append(await answer(pool, line))
            if not saw_newline and pending.strip():
                out.append(await answer(pool, pending))
                pending = b""
            if out:
                writer.write(b"".join(out))
                await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main():
    if len(sys.argv) != 2:
        sys.exit("usage: fib_asyncio.py HOST:PORT")
    host, port = sys.argv[1].rsplit(":", 1)
    with ProcessPoolExecutor() as pool:
        server = await asyncio.start_server(lambda r, w: handle(pool, r, w), host, int(port), backlog=1024)
        async with server:
            await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
