// The server: a listener, an engine that accepts and serves its connections
// in the mode asked for (src/server/engine.h), and a supervisor thread that
// bounds a stop and logs statistics.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <semaphore>
#include <string_view>
#include <vector>

#include "fib/core/address.h"
#include "fib/core/fib.h"
#include "fib/core/reply_counts.h"
#include "fib/core/request_handler.h"
#include "fib/net/socket.h"
#include "fib/server/outcomes.h"

namespace fib {

struct ServerConfig {
  HostPort address{"127.0.0.1", 25000};
  Mode mode = Mode::thread;
  Algorithm algorithm = Algorithm::recursive;
  unsigned max_n = 0;  // 0: fib::default_max_n(algorithm)
  // How long a stop lets requests already read run, and answers reach
  // clients still reading, before giving up on them (see run()).
  std::chrono::milliseconds shutdown_timeout{10'000};
  // Connections served at once; a client over the limit gets an error line
  // and is closed. 0: what the descriptor limit allows.
  unsigned max_connections = 0;
  // A connection that completes no request, or cannot send its replies, for
  // this long is closed. 0: never.
  std::chrono::milliseconds idle_timeout{300'000};
  // Log a statistics line this often, and once at shutdown; 0: never.
  std::chrono::milliseconds stats_interval{0};
  // Modes with event loops: their threads, and the worker threads for slow
  // requests. 0: usable_cpus().
  unsigned threads = 0;
  unsigned workers = 0;
  // Slow requests computed at once, in every mode; the others wait their
  // turn. nullopt: usable_cpus(); 0: no limit.
  std::optional<unsigned> max_computing = std::nullopt;
};

// The server's running totals and what its threads are doing.
struct ServerStats {
  std::uint64_t open = 0;                              // connections open now
  std::uint64_t accepted = 0;                          // connections accepted, refused ones included
  std::array<std::uint64_t, kRefusalKinds> refused{};  // by Refusal
  std::array<std::uint64_t, kConnectionEnds> ended{};  // connections served and closed, by End
  ReplyCounts replies;                                 // sent, the last line of a closing connection aside
  ServiceTimes service_times;                          // of those replies
  // Slow requests computing now, and waiting for a turn (--max-computing).
  std::uint64_t computing = 0, waiting_to_compute = 0;
  // A thread per connection: threads serving a connection, and parked ones.
  struct Threads {
    std::uint64_t busy = 0, parked = 0;
  };
  std::optional<Threads> threads;
  // Event loops: their threads and CPU time, and the workers with the slow
  // requests handed to them (computing or waiting for one); in the uring
  // mode, the receives that found every buffer of their loop taken, and
  // waited for the next round; in the coroutine mode, the connections
  // parked (at rest, with no coroutine).
  struct Loops {
    unsigned threads = 0, workers = 0;
    std::uint64_t cpu_ns = 0, at_workers = 0, buffer_shortages = 0, parked = 0;
    std::vector<std::uint64_t> open{};  // the connections each loop serves now
  };
  std::optional<Loops> loops;

  std::uint64_t refused_total() const;
};

// The descriptor limit in effect, less a reserve for the listener, logging
// and the like.
unsigned default_max_connections();
// The CPUs this process may run on.
unsigned usable_cpus();

class Engine;
struct EngineContext;
class ConnectionBook;
class ComputeGate;
class StopState;
struct ConnectionRules;

class Server {
 public:
  // Binds and listens at once; throws std::system_error when it cannot
  // listen, std::runtime_error when the host name does not resolve.
  explicit Server(const ServerConfig& config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The address actually bound, with the real port when port 0 was asked for.
  const Endpoint& local_endpoint() const { return local_; }

  // Logs "listening on HOST:PORT", accepts and serves until stop(); then
  // stops accepting and reading, answers every request already read, sends
  // each connection the stopping line and closes it gracefully, and joins
  // every thread before returning, even when it throws. Past
  // shutdown_timeout, requests not answered yet are given up (running
  // computations included) and sends and graceful closes get kStopGrace
  // more. Call once.
  void run();
  static constexpr std::chrono::milliseconds kStopGrace{100};

  // Thread-safe and idempotent; may be called before or during run(). Takes
  // no lock. Not async-signal-safe: call it from a thread.
  void stop();

  // Thread-safe; the request path is never touched (each connection
  // publishes its own counters).
  ServerStats stats() const;

  const ServerConfig& config() const { return config_; }
  // The largest n answered.
  unsigned max_n() const { return handler_.max_n(); }
  // Slow requests computed at once; 0: no limit.
  unsigned max_computing() const;

 private:
  void supervise();
  void log_listening() const;

  ServerConfig config_;
  RequestHandler handler_;
  Endpoint local_;
  Fd listener_;  // shut down by a stop, closed with the server
  std::unique_ptr<StopState> stop_;
  std::unique_ptr<ComputeGate> gate_;
  std::unique_ptr<ConnectionRules> rules_;
  std::unique_ptr<ConnectionBook> book_;
  std::unique_ptr<EngineContext> context_;
  std::unique_ptr<Engine> engine_;

  std::atomic<bool> stop_called_{false};
  std::binary_semaphore stop_posted_{0};  // stop() has been called: the supervisor takes over
  std::binary_semaphore finished_{0};     // run() has seen every connection and thread end
};

}  // namespace fib
