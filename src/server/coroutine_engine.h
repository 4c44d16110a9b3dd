// C++20 coroutines on event loops: `--threads` loops, each an
// asio::io_context run by a thread of its own that accepts connections on
// the shared listener and deals each to the loops in turn (see
// LoopEngine::next_loop()), which serve them as coroutines, and a WorkerPool of
// `--workers` threads that computes the slow requests. Everything a loop
// owns is touched by its thread only, apart from the atomic totals that
// statistics read.
//
// A connection with nothing pending for a while is parked: its coroutine
// ends (and with it every frame and buffer), and a plain wait on its socket
// starts a new one when input arrives. A sweeper per loop sees every
// connection: it cancels a wait past its deadline (idle, or the client
// stopped reading) and parks connections at rest; a stop cancels every
// receive and every parked wait.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <cstdint>
#include <exception>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "connection_counters.h"
#include "connection_driver.h"
#include "engine.h"
#include "loop_engine.h"
#include "sweep.h"

namespace fib {

struct EventLoop;

// One connection of a loop: what outlives the coroutine serving it.
struct LoopConnection {
  LoopConnection(asio::ip::tcp::socket connected, Ticket admitted, const EngineContext& context, EventLoop& loop);

  // Tells the sweeper what the connection waits for, until when.
  void wait_for(Wait::For what, Clock::time_point until);

  Ticket ticket;  // its place in the book (the peer's address, for the log)
  asio::ip::tcp::socket socket;
  Wait wait;
  bool park = false;  // the sweeper cancelled the wait to park the connection
  unsigned rest_sweeps = 0;
  ConnectionDriver driver;
};
using LoopConnections = std::list<LoopConnection>;

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

struct EventLoop : LoopTotals {
  explicit EventLoop(const EngineContext& context) : spares(context.handler, *context.rules.stop) {}

  asio::io_context io{1};
  std::optional<asio::ip::tcp::acceptor> acceptor;
  LoopConnections connections;  // served by a coroutine
  LoopConnections parked;       // waiting for input with no coroutine, looked at less often
  asio::steady_timer* sweep_timer = nullptr;
  asio::steady_timer* accept_pause = nullptr;  // while accepting is paused (out of descriptors)
  // Past a stop's timeout: when sends in progress are given up.
  Clock::time_point send_limit = Clock::time_point::max();
  SpareSessions spares;  // sessions no connection at rest holds
  Arrivals arrivals;
};

class CoroutineEngine final : public LoopEngine {
 public:
  // Opens an acceptor per loop on (a duplicate of) the listener.
  explicit CoroutineEngine(const EngineContext& context);
  ~CoroutineEngine() override;

  void stop() override;
  void abandon() override;
  unsigned descriptors_held() const override;

 private:
  std::size_t loops() const override { return loops_.size(); }
  void run_loop(std::size_t index) override;
  const LoopTotals& totals(std::size_t index) const override { return *loops_[index]; }
  asio::awaitable<void> accept(EventLoop& loop);
  // Deals `socket`, accepted by `from`, to the loop whose turn it is.
  void hand_over(EventLoop& from, asio::ip::tcp::socket socket, const Endpoint& peer) noexcept;
  // On the loop that serves it: `fd`, handed over, watched by the loop and welcomed.
  void arrive(EventLoop& loop, Fd fd, const Endpoint& peer) noexcept;
  // Admits `socket` on `loop` (the loop that serves it) and starts serving it.
  void welcome(EventLoop& loop, asio::ip::tcp::socket socket, const Endpoint& peer) noexcept;
  asio::awaitable<void> serve(EventLoop& loop, LoopConnections::iterator connection);
  // Starts (again) the coroutine serving `connection`, in loop.connections.
  void start(EventLoop& loop, LoopConnections::iterator connection) noexcept;
  void park(EventLoop& loop, LoopConnections::iterator connection) noexcept;
  // Closes `connection`, in loop.connections, and counts it out.
  void end(EventLoop& loop, LoopConnections::iterator connection, const ConnectionResult& result) noexcept;

  std::vector<std::unique_ptr<EventLoop>> loops_;
};

// Serves `connection` on `loop`'s thread (see connection_driver.h), with
// slow requests computed on `workers`; false when the sweeper parked it:
// serve it again once input arrives. Never throws for what a client does;
// does not close the socket.
asio::awaitable<bool> serve_on_loop(LoopConnection& connection, EventLoop& loop, const ConnectionRules& rules,
                                    WorkerPool& workers);

// The loop's sweeper: sweeps its connections, more often while stopping,
// until a stop has ended them all.
asio::awaitable<void> sweeper(EventLoop& loop, const ConnectionRules& rules);

}  // namespace fib
