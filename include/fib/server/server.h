// The server: a listener, an engine that accepts and serves its connections
// in the mode asked for (src/server/engine.h), and a supervisor thread that
// bounds a stop and logs statistics.
#pragma once

#include <memory>

#include "fib/net/socket.h"
#include "fib/server/config.h"
#include "fib/server/stats.h"

namespace fib {

struct ServerParts;  // the listener, the rules, the book, the engine, the supervisor's signals

class Server {
 public:
  // Binds and listens at once; throws std::system_error when it cannot
  // listen, std::runtime_error when the host name does not resolve.
  explicit Server(const ServerConfig& config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The address actually bound, with the real port when port 0 was asked for.
  const Endpoint& local_endpoint() const;

  // Logs "listening on HOST:PORT", accepts and serves until stop(); then
  // stops accepting and reading, answers every request already read, sends
  // each connection the stopping line and closes it gracefully, and joins
  // every thread before returning, even when it throws. Past
  // shutdown_timeout, requests not answered yet are given up (running
  // computations included) and sends and graceful closes get a grace of
  // 100 ms more (StopState::kGrace). Call once.
  void run();

  // Thread-safe and idempotent; may be called before or during run(). Takes
  // no lock. Not async-signal-safe: call it from a thread.
  void stop();

  // Thread-safe; the request path is never touched (each connection
  // publishes its own counters).
  ServerStats stats() const;

  const ServerConfig& config() const;
  // The largest n answered.
  unsigned max_n() const;
  // Slow requests computed at once; 0: no limit.
  unsigned max_computing() const;

 private:
  std::unique_ptr<ServerParts> parts_;
};

}  // namespace fib
