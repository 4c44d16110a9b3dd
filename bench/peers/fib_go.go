// The Go write-up's concurrent server, as a peer for bench/compare.sh: a
// goroutine per connection (the synchronous server with `go` in front of
// the handler call), the same recursive fib (n <= 2 base case) and our
// protocol: newline-terminated requests, or bare digits with no newline
// from a client that has never sent one (the talk's perf clients).
// Usage: fib_go HOST:PORT
package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
)

func fib(n uint64) uint64 {
	if n <= 2 {
		return 1
	}
	return fib(n-1) + fib(n-2)
}

func answer(request []byte) []byte {
	text := string(bytes.TrimSpace(request))
	n, err := strconv.ParseUint(text, 10, 64)
	if err != nil || n > 45 {
		return []byte(fmt.Sprintf("error: %q is not a number from 0 to 45\n", text))
	}
	if n == 0 {
		return []byte("0\n")
	}
	return []byte(strconv.FormatUint(fib(n), 10) + "\n")
}

func handle(conn net.Conn) {
	defer conn.Close()
	buf := make([]byte, 4096)
	var pending []byte
	sawNewline := false
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			pending = append(pending, buf[:n]...)
			var out []byte
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				sawNewline = true
				if line := bytes.TrimSpace(pending[:i]); len(line) > 0 {
					out = append(out, answer(line)...)
				}
				pending = pending[i+1:]
			}
			if !sawNewline && len(bytes.TrimSpace(pending)) > 0 {
				out = append(out, answer(pending)...)
				pending = pending[:0]
			}
			if len(out) > 0 {
				if _, err := conn.Write(out); err != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: fib_go HOST:PORT")
		os.Exit(2)
	}
	listener, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		conn, err := listener.Accept()
		if err != nil {
			continue
		}
		go handle(conn)
	}
}
