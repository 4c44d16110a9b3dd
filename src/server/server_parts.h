// What a Server is made of, for server.cpp (building it, running it) and
// server_stop.cpp (the stop and its supervisor): the listener, the rules
// every connection obeys, the book, the engine, and the signals between
// run(), stop() and the supervisor.
#pragma once

#include <atomic>
#include <memory>
#include <semaphore>

#include "engine.h"
#include "fib/core/request_handler.h"
#include "fib/server/config.h"
#include "fib/server/stats.h"
#include "rules/compute_gate.h"
#include "rules/connection_book.h"
#include "rules/rules.h"

namespace fib {

struct ServerParts {
  explicit ServerParts(const ServerConfig& asked);

  void log_listening() const;
  ServerStats stats() const;
  // server_stop.cpp: what Server::stop() does, and the supervisor thread.
  void stop();
  void supervise();

  const ServerConfig config;
  const RequestHandler handler;
  Endpoint local;
  Fd listener;  // shut down by a stop, closed with the server
  StopState stop_state;
  ComputeGate gate;
  const ConnectionRules rules;
  ConnectionBook book;
  const EngineContext context;  // what the engine is given of the above
  std::unique_ptr<Engine> engine;

  std::atomic<bool> stop_called{false};
  std::binary_semaphore stop_posted{0};  // stop() has been called: the supervisor takes over
  std::binary_semaphore finished{0};     // run() has seen every connection and thread end
};

}  // namespace fib
