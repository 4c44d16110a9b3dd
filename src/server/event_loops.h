// Coroutine mode: `--threads` event loops, each an asio::io_context run by a
// thread of its own that accepts connections and serves each as a C++20
// coroutine over the same Session as the thread mode, and a pool of
// `--workers` threads, at a lower priority, that computes the slow requests.
// Everything a loop owns is touched by its thread only, apart from the
// atomic totals that statistics read.
#pragma once

#include <time.h>

#include <array>
#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <cstdint>
#include <exception>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "fib/core/clock.h"
#include "fib/core/request_handler.h"
#include "fib/core/session.h"
#include "fib/net/socket.h"
#include "fib/server/connection.h"

namespace fib {

class Server;
struct ServerStats;

// Asio's completion token for a coroutine that wants errors as values.
inline constexpr auto kNoThrow = asio::experimental::as_tuple(asio::use_awaitable);

// One connection of a loop: what outlives the coroutine serving it. A
// connection that has nothing pending for a while is parked: its coroutine
// ends (and with it every frame and buffer), and a plain wait on its socket
// starts a new one when input arrives. The sweeper sees every connection:
// it cancels a wait past its deadline (idle, or the client stopped reading)
// and parks connections at rest; a stop cancels every receive and every
// parked wait.
struct LoopConnection {
  enum class Waiting { nothing, receive, send, parked };
  LoopConnection(asio::ip::tcp::socket connected, std::string peer)
      : socket(std::move(connected)), name(std::move(peer)) {}

  asio::ip::tcp::socket socket;
  std::string name;  // the peer's address, for the log
  Waiting waiting = Waiting::nothing;
  Clock::time_point deadline = Clock::time_point::max();
  bool expired = false;  // the sweeper cancelled the wait: past its deadline
  bool resting = false;  // waiting to receive with nothing pending (no session held)
  bool park = false;     // the sweeper cancelled the wait to park the connection
  unsigned rest_sweeps = 0;
  // What the connection keeps between coroutines.
  Session::Rest rest;
  Clock::time_point last_valid = Clock::now();
  ConnectionResult result;
};
using LoopConnections = std::list<LoopConnection>;

struct EventLoop {
  asio::io_context io{1};
  std::optional<asio::ip::tcp::acceptor> acceptor;
  LoopConnections connections;  // served by a coroutine
  LoopConnections parked;       // waiting for input with no coroutine, looked at less often
  asio::steady_timer* sweep_timer = nullptr;
  asio::steady_timer* accept_pause = nullptr;  // while accepting is paused (out of descriptors)
  // Past a stop's timeout: when sends in progress are given up.
  Clock::time_point send_limit = Clock::time_point::max();
  ConnectionCounters totals;  // replies sent by this loop's connections, closed ones included
  // How this loop's connections ended, by ConnectionResult::End.
  std::array<std::atomic<std::uint64_t>, kConnectionEnds> ended{};
  std::atomic<std::uint64_t> at_workers{0};  // slow requests handed to the workers, not back yet
  // The CPU time of the loop's thread: its clock while it runs, then what it read last.
  std::atomic<bool> running{false};
  clockid_t cpu_clock{};
  std::atomic<std::uint64_t> cpu_ns_at_end{0};
  mutable std::atomic<std::uint64_t> cpu_ns_reported{0};  // the most a scrape has seen
  // Sessions no connection holds: a connection with nothing pending hands
  // its session back (see Session::Rest). At most kSpareSessions are kept.
  std::vector<std::unique_ptr<Session>> spare_sessions;
  static constexpr std::size_t kSpareSessions = 64;
  alignas(64) std::atomic<std::uint64_t> open{0};
};

class EventLoops {
 public:
  // Opens an acceptor per loop on (a duplicate of) the server's listener.
  EventLoops(Server& server, int listener, unsigned threads, unsigned workers);
  ~EventLoops();
  EventLoops(const EventLoops&) = delete;
  EventLoops& operator=(const EventLoops&) = delete;

  // Runs every loop and the workers until a stop has closed every
  // connection; rethrows what broke a loop (a broken listener).
  void run();
  // From any thread: close the acceptors, cancel every receive.
  void stop();
  // From any thread, after stop(): sends in progress get kStopGrace more.
  void abandon();

  std::uint64_t open() const;
  // From any thread: adds the loops' replies, ends, slow requests at the
  // workers and CPU time to `stats`.
  void add_to(ServerStats& stats) const;
  unsigned threads() const { return static_cast<unsigned>(loops_.size()); }
  unsigned workers() const { return worker_count_; }

 private:
  asio::awaitable<void> accept(EventLoop& loop);
  asio::awaitable<void> serve(EventLoop& loop, LoopConnections::iterator connection);
  void park(EventLoop& loop, LoopConnections::iterator connection) noexcept;
  // Starts (again) the coroutine serving `connection`, in loop.connections.
  void start(EventLoop& loop, LoopConnections::iterator connection) noexcept;
  // Closes `connection`, in loop.connections, and counts it out.
  void end(EventLoop& loop, LoopConnections::iterator connection) noexcept;
  asio::awaitable<void> sweep(EventLoop& loop);
  static void sweep(EventLoop& loop, LoopConnections& connections, Clock::time_point now);
  void run_loop(EventLoop& loop);
  void run_worker();
  void fail(std::exception_ptr error);

  Server& server_;
  const ConnectionPolicy policy_;  // every connection's
  std::vector<std::unique_ptr<EventLoop>> loops_;
  asio::io_context workers_;
  unsigned worker_count_;
  std::atomic<std::uint64_t> open_{0};  // connections open in every loop: --max-connections
  std::mutex failure_mutex_;
  std::exception_ptr failure_;
};

// The awaitable counterpart of serve_connection(): the same rules and
// results, on `loop`'s thread, with slow requests computed on `workers`.
// nullopt when the sweeper parked the connection: serve it again once input
// arrives. Adds the replies it sends to loop.totals (policy.counters is not
// used). Never throws for what a client does; does not close the socket.
asio::awaitable<std::optional<ConnectionResult>> serve_connection_async(LoopConnection& connection, EventLoop& loop,
                                                                        const RequestHandler& handler,
                                                                        const ConnectionPolicy& policy,
                                                                        asio::io_context::executor_type workers);

}  // namespace fib
