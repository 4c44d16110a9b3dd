// An Asio event loop of the asio engine (the `coroutine` mode, see
// asio_engine.h): its io_context, its connections, served and parked, and
// the steps of one connection as a coroutine, with the loop's sweeper.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <list>
#include <mutex>
#include <optional>

#include "engine.h"
#include "loop/loop_engine.h"
#include "loop/sweep.h"
#include "rules/connection_driver.h"

namespace fib {

struct AsioLoop;

// One connection of a loop: what outlives the coroutine serving it.
struct AsioConnection {
  AsioConnection(asio::ip::tcp::socket connected, Ticket admitted, const EngineContext& context, AsioLoop& loop);

  // Tells the sweeper what the connection waits for, until when.
  void wait_for(Wait::For what, Clock::time_point until);

  Ticket ticket;  // its place in the book (the peer's address, for the log)
  asio::ip::tcp::socket socket;
  Wait wait;
  bool park = false;  // the sweeper cancelled the wait to park the connection
  unsigned rest_sweeps = 0;
  ConnectionDriver driver;
};
using AsioConnections = std::list<AsioConnection>;

// Connections another loop accepted for this one: posted to its io_context,
// not welcomed yet. Once closed, as the loop ends, nothing more is posted,
// so that no connection is left in a queue no thread runs.
class Arrivals {
 public:
  // On the loop that accepted: false once the receiving loop has ended.
  bool expect();
  // On the receiving loop, as a connection posted arrives.
  void landed();
  // On the receiving loop, as it ends: false while one is on its way.
  bool close();

 private:
  std::mutex mutex_;
  unsigned posted_ = 0;
  bool closed_ = false;
};

struct AsioLoop : LoopTotals {
  explicit AsioLoop(const EngineContext& context) : spares(context.handler, *context.rules.stop) {}

  asio::io_context io{1};
  std::optional<asio::ip::tcp::acceptor> acceptor;
  AsioConnections connections;  // served by a coroutine
  AsioConnections parked;       // waiting for input with no coroutine, looked at less often
  asio::steady_timer* sweep_timer = nullptr;
  asio::steady_timer* accept_pause = nullptr;  // while accepting is paused (out of descriptors)
  // Past a stop's timeout: when sends in progress are given up.
  Clock::time_point send_limit = Clock::time_point::max();
  SpareSessions spares;  // sessions no connection at rest holds
  Arrivals arrivals;
};

// Serves `connection` on `loop`'s thread (see connection_driver.h), with
// slow requests computed on `workers`; false when the sweeper parked it:
// serve it again once input arrives. Never throws for what a client does;
// does not close the socket.
asio::awaitable<bool> serve_on_loop(AsioConnection& connection, AsioLoop& loop, const ConnectionRules& rules,
                                    WorkerPool& workers);

// The loop's sweeper: sweeps its connections, more often while stopping,
// until a stop has ended them all.
asio::awaitable<void> sweeper(AsioLoop& loop, const ConnectionRules& rules);

}  // namespace fib
