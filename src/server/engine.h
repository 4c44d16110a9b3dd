// The seam between the server and a way of serving: an engine accepts on
// the server's listener and serves each connection it admits, with the
// connection rules of connection_driver.h, until a stop. The server owns the
// listener, the stop, the supervisor and the engine; make_engine() reads
// the mode's row in the table of modes (modes.cpp), the one place that
// names the engines.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "fib/core/request_handler.h"
#include "fib/net/socket.h"
#include "fib/server/outcomes.h"
#include "fib/server/stats.h"
#include "rules/connection_book.h"
#include "rules/rules.h"

namespace fib {

// What every engine is given.
struct EngineContext {
  const RequestHandler& handler;
  const ConnectionRules& rules;
  ConnectionBook& book;  // admission, refusals, ends and their log lines
  int listener;          // blocking; stop() shuts it down
  const Endpoint& local;
  unsigned loops, workers;            // modes with event loops: their threads, and those for slow requests
  std::function<void()> stop_server;  // for an engine that breaks: the server stops
};

class Engine {
 public:
  Engine() = default;
  virtual ~Engine() = default;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Accepts and serves until a stop has ended every connection, then
  // returns with every thread it started joined. Throws what broke it
  // (a broken listener), after the same.
  virtual void run() = 0;
  // A stop has begun (called once, from any thread, with no lock held that
  // connections take): stop accepting, and have connections blocked in a
  // receive see it. The listener is shut down already, which ends a
  // blocking accept.
  virtual void stop() {}
  // From the stop's supervisor, repeatedly until every connection has ended:
  // wakes connections a stop cannot reach otherwise.
  virtual void wake() {}
  // Past the shutdown timeout: sends in progress get StopState::kGrace more.
  virtual void abandon() = 0;

  // Descriptors the engine holds itself, kept back from the connection limit.
  virtual unsigned descriptors_held() const { return 0; }
  // ", 2 event loops, 2 workers": what the "listening on" line says of it.
  virtual std::string describe() const { return {}; }
  // Adds the replies its connections sent, and what is its own.
  virtual void add_to(ServerStats& stats) const = 0;
};

std::unique_ptr<Engine> make_engine(Mode mode, const EngineContext& context);

}  // namespace fib
