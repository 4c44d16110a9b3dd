// The asio engine (`--mode coroutine`), C++20 coroutines on event loops:
// `--threads` loops, each an asio::io_context run by a thread of its own
// that accepts connections on the shared listener and deals each to the
// loops in turn (see LoopEngine::next_loop()), which serve them as
// coroutines (asio_loop.h), and a WorkerPool of `--workers` threads that
// computes the slow requests. Everything a loop owns is touched by its
// thread only, apart from the atomic totals that statistics read.
//
// A connection with nothing pending for a while is parked: its coroutine
// ends (and with it every frame and buffer), and a plain wait on its socket
// starts a new one when input arrives. A sweeper per loop sees every
// connection: it cancels a wait past its deadline (idle, or the client
// stopped reading) and parks connections at rest; a stop cancels every
// receive and every parked wait.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <cstddef>
#include <memory>
#include <vector>

#include "asio_loop.h"
#include "engine.h"
#include "loop/loop_engine.h"

namespace fib {

class AsioEngine final : public LoopEngine {
 public:
  // Opens an acceptor per loop on (a duplicate of) the listener.
  explicit AsioEngine(const EngineContext& context);
  ~AsioEngine() override;

  void stop() override;
  void abandon() override;
  unsigned descriptors_held() const override;

 private:
  std::size_t loops() const override { return loops_.size(); }
  void run_loop(std::size_t index) override;
  const LoopTotals& totals(std::size_t index) const override { return *loops_[index]; }
  asio::awaitable<void> accept(AsioLoop& loop);
  // Deals `socket`, accepted by `from`, to the loop whose turn it is.
  void hand_over(AsioLoop& from, asio::ip::tcp::socket socket, const Endpoint& peer) noexcept;
  // On the loop that serves it: `fd`, handed over, watched by the loop and welcomed.
  void arrive(AsioLoop& loop, Fd fd, const Endpoint& peer) noexcept;
  // Admits `socket` on `loop` (the loop that serves it) and starts serving it.
  void welcome(AsioLoop& loop, asio::ip::tcp::socket socket, const Endpoint& peer) noexcept;
  asio::awaitable<void> serve(AsioLoop& loop, AsioConnections::iterator connection);
  // Starts (again) the coroutine serving `connection`, in loop.connections.
  void start(AsioLoop& loop, AsioConnections::iterator connection) noexcept;
  void park(AsioLoop& loop, AsioConnections::iterator connection) noexcept;
  // Closes `connection`, in loop.connections, and counts it out.
  void end(AsioLoop& loop, AsioConnections::iterator connection, const ConnectionResult& result) noexcept;

  std::vector<std::unique_ptr<AsioLoop>> loops_;
};

}  // namespace fib
