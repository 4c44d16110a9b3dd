// The server: an accept loop that hands each connection to a thread of its
// own (a parked one when there is one; in sequential mode it serves the
// connection itself before accepting the next; in coroutine mode event
// loops accept and serve instead, see src/server/event_loops.h), a registry
// of live connections so that a stop can close them and join every thread,
// and a supervisor thread that bounds a stop and logs statistics.
#pragma once

#include <pthread.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <semaphore>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fib/core/clock.h"
#include "fib/core/fib.h"
#include "fib/core/reply_counts.h"
#include "fib/core/request_handler.h"
#include "fib/net/socket.h"
#include "fib/server/compute_gate.h"
#include "fib/server/connection.h"

namespace fib {

enum class Mode {
  thread,      // a std::thread per live connection, as the Go server has a goroutine
  sequential,  // one connection at a time, in the accept loop: the synchronous server
  coroutine,   // a C++20 coroutine per connection on event loops, slow requests on workers
};

std::string_view to_string(Mode mode);

struct ServerConfig {
  HostPort address{"127.0.0.1", 25000};
  Mode mode = Mode::thread;
  Algorithm algorithm = Algorithm::recursive;
  unsigned max_n = 0;  // 0: fib::default_max_n(algorithm)
  // How long a stop lets requests already read run, and answers reach
  // clients still reading, before giving up on them (see run()).
  std::chrono::milliseconds shutdown_timeout{10'000};
  // Connections served at once; a client over the limit gets an error line
  // and is closed. 0: default_max_connections().
  unsigned max_connections = 0;
  // A connection that completes no request, or cannot send its replies, for
  // this long is closed. 0: never.
  std::chrono::milliseconds idle_timeout{300'000};
  // Log a statistics line this often, and once at shutdown; 0: never.
  std::chrono::milliseconds stats_interval{0};
  // Coroutine mode: event-loop threads, and worker threads for slow
  // requests. 0: usable_cpus().
  unsigned threads = 0;
  unsigned workers = 0;
  // Slow requests computed at once, in every mode; the others wait their
  // turn (see compute_gate.h). nullopt: usable_cpus(); 0: no limit.
  std::optional<unsigned> max_computing = std::nullopt;
};

// Why a connection was refused.
enum class Refusal {
  over_limit,  // --max-connections were open
  no_thread,   // no thread (or memory) could be had for it
};
inline constexpr std::size_t kRefusals = 2;

// The server's running totals and what its threads are doing.
struct ServerStats {
  std::uint64_t open = 0;                              // connections open now
  std::uint64_t accepted = 0;                          // connections accepted, refused ones included
  std::array<std::uint64_t, kRefusals> refused{};      // by Refusal
  std::array<std::uint64_t, kConnectionEnds> ended{};  // connections served and closed, by ConnectionResult::End
  ReplyCounts replies;                                 // sent, the last line of a closing connection aside
  ServiceTimes service_times;                          // of those replies
  // Thread mode: connection threads serving a connection, and parked ones.
  std::uint64_t threads_busy = 0, threads_parked = 0;
  // Coroutine mode: slow requests handed to the workers (computing or
  // waiting for one), and the CPU time of the event-loop threads.
  std::uint64_t at_workers = 0;
  std::uint64_t loop_cpu_ns = 0;
  // Slow requests computing now, and waiting for a turn (--max-computing).
  std::uint64_t computing = 0, waiting_to_compute = 0;

  std::uint64_t refused_total() const { return refused[0] + refused[1]; }
};

// The descriptor limit in effect, less a reserve for the listener, logging
// and the like.
unsigned default_max_connections();
// The CPUs this process may run on.
unsigned usable_cpus();

class EventLoops;

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
  // more, so a stop takes the timeout plus kStopGrace plus the time every
  // busy thread needs to be scheduled once. Call once.
  void run();
  // What a stop allows past its timeout: for a send in progress, and for a
  // connection's last line and graceful close.
  static constexpr std::chrono::milliseconds kStopGrace{100};
  // Out of descriptors or memory, accept fails again at once: the accept
  // loop waits, doubling the pause up to a limit, as Go's net/http does,
  // instead of spinning.
  static constexpr std::chrono::milliseconds kAcceptBackoffFirst{5};
  static constexpr std::chrono::milliseconds kAcceptBackoffMax{1000};

  // Thread-safe and idempotent; may be called before or during run(). Not
  // async-signal-safe: call it from a thread, not a signal handler.
  void stop();

  // Thread-safe. Takes the registry lock once; the request path is never
  // touched (each connection publishes its own counters).
  ServerStats stats();

  const ServerConfig& config() const { return config_; }
  // The largest n answered.
  unsigned max_n() const { return handler_.max_n(); }
  // Coroutine mode: event-loop threads and workers; 0 in the other modes.
  unsigned event_loops() const;
  unsigned workers() const;
  // Slow requests computed at once; 0: no limit.
  unsigned max_computing() const { return gate_.limit(); }

 private:
  friend class EventLoops;  // coroutine mode
  // A live connection: the thread serving it (which a stop wakes with a
  // signal) and its descriptor (whose send timeout a stop shortens).
  struct Live {
    int fd;
    pthread_t thread;
    ConnectionCounters counters;
  };
  using LiveList = std::list<Live>;
  // What a connection thread is handed.
  struct Job {
    int fd;
    Endpoint peer;
    LiveList::iterator self;
  };
  // Connection threads kept parked for the next connections.
  static constexpr std::size_t kMaxParkedThreads = 64;
  // A connection thread. Between connections it parks (up to
  // kMaxParkedThreads of them), so that a new connection usually costs a
  // wake-up rather than a new thread, as MySQL's thread cache does; there is
  // still one thread per live connection.
  struct ConnectionThread {
    std::thread thread;
    std::condition_variable wake;  // a job was handed over, or the server is stopping
    std::optional<Job> job;
  };
  using ConnectionThreadList = std::list<ConnectionThread>;

  void accept_loop();
  void accept_one(Fd fd, const Endpoint& peer);
  void finish();
  void supervise();
  void begin_stopping(std::unique_lock<std::mutex>& lock);
  void hand_over(Fd fd, const Endpoint& peer, LiveList::iterator self, std::unique_lock<std::mutex>& lock);
  void work(ConnectionThreadList::iterator self);
  void refuse(Fd fd, const Endpoint& peer) noexcept;
  void turn_away(Fd fd, const Endpoint& peer, std::string_view why) noexcept;
  static void hang_up(int fd, std::string_view message) noexcept;
  std::uint64_t tell_backlog_stopping() noexcept;
  // Serves one connection on the calling thread, then unregisters it. Never
  // throws: whatever happens, the connection ends and is unregistered.
  void serve(Fd fd, const Endpoint& peer, LiveList::iterator self);
  ConnectionResult serve_and_log(int fd, const Endpoint& peer, ConnectionCounters& counters);
  static void log_closed(const std::string& name, const ConnectionResult& result);
  static void log_accept_paused(int error);
  void drain();
  // No connection is open in any mode.
  bool all_closed() const;

  ServerConfig config_;
  RequestHandler handler_;
  unsigned max_connections_;
  Endpoint local_;
  Fd listener_;                        // shut down by a stop, closed with the server
  StopState stop_;                     // how connections learn of a stop
  ComputeGate gate_;                   // slow requests take turns here
  std::unique_ptr<EventLoops> loops_;  // coroutine mode

  std::atomic<bool> stop_called_{false};
  std::uint64_t backlog_told_ = 0;        // by stop(), before it posts
  std::binary_semaphore stop_posted_{0};  // stop() has been called: the supervisor takes over

  std::mutex mutex_;  // guards everything below; taken per connection, never per request
  // Signalled by stop(), and while stopping by every connection or thread
  // that ends (before a stop nobody waits for those).
  std::condition_variable changed_;
  bool stopping_ = false;
  bool finished_ = false;  // run() has seen every connection and thread end
  Clock::time_point stop_deadline_;
  LiveList live_;                          // also counts the connections served at once
  ConnectionThreadList threads_;           // running connection threads, busy or parked
  std::vector<ConnectionThread*> parked_;  // the idle ones among them
  std::thread last_retired_;               // the one ended thread not yet joined
  std::atomic<std::uint64_t> threads_failed_{0};
  std::atomic<std::uint64_t> accepted_{0};
  std::array<std::atomic<std::uint64_t>, kRefusals> refused_{};
  // Of connections no longer live (thread and sequential modes).
  ReplyCounts closed_replies_;
  ServiceTimes closed_service_times_;
  std::array<std::uint64_t, kConnectionEnds> ended_{};
};

}  // namespace fib
