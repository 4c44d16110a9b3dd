// Helpers for tests over real sockets: a server running in-process on an
// ephemeral port, and a blocking client with bounded waits.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "eventually.h"
#include "fib/net/socket.h"
#include "fib/server/server.h"

namespace fib::testing {

using namespace std::chrono_literals;

// A Server on 127.0.0.1 port 0, its run() on a thread of its own; the
// destructor stops it and joins.
class RunningServer {
 public:
  explicit RunningServer(ServerConfig config = {});
  ~RunningServer();
  Server& server() { return *server_; }
  std::uint16_t port() const { return server_->local_endpoint().port(); }
  // Stops the server and waits for run() to return.
  void stop_and_join();

 private:
  std::unique_ptr<Server> server_;
  std::thread runner_;
};

// A stand-in server for the cases fib_server never produces (wrong numbers,
// stalls, silence, hanging up): each connection is handed, on a thread of
// its own, to `handle`. Stops accepting and joins on destruction; handlers
// must return once their client goes away.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::function<void(int fd)> handle);
  ~ScriptedServer();
  std::uint16_t port() const { return port_; }

 private:
  Fd listener_;
  std::uint16_t port_ = 0;
  std::atomic<bool> done_{false};
  std::thread acceptor_;
  std::vector<std::thread> handlers_;
};

class Client {
 public:
  explicit Client(std::uint16_t port, const std::string& host = "127.0.0.1");
  int fd() const { return fd_.get(); }
  void send(std::string_view data);
  void shutdown_write();
  // One line without its '\n', or nullopt if none arrives within `timeout`
  // (or the stream ends first).
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = 10s);
  std::vector<std::string> read_lines(std::size_t count, std::chrono::milliseconds timeout = 20s);
  // True if the server closes the stream, with no more bytes, within `timeout`.
  bool read_eof(std::chrono::milliseconds timeout = 10s);
  // True if the next line is the stopping line ("error: server stopping")
  // and the stream then ends, within `timeout`: how a stop ends a connection.
  bool read_stopping_then_eof(std::chrono::milliseconds timeout = 10s);
  // True if bytes arrive within `timeout` (nothing is consumed).
  bool readable_within(std::chrono::milliseconds timeout);

 private:
  // Receives more bytes into pending_; false at end of stream or timeout.
  bool fill(std::chrono::steady_clock::time_point deadline);
  Fd fd_;
  std::string pending_;
};

}  // namespace fib::testing
