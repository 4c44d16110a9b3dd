// The server: the accept loop, the registry of live connections, the
// connection threads (parked and reused), and turning clients away.
#include "fib/server/server.h"

#include <sched.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>

#include "event_loops.h"
#include "fib/core/address.h"
#include "fib/core/clock.h"
#include "fib/core/plural.h"
#include "fib/net/thread_wake.h"
#include "fib/server/async_log.h"
#include "fib/server/connection.h"

namespace fib {

namespace {

// What the client already sent and a refusal reads before closing, at most.
constexpr std::size_t kRefusalDiscardBytes = std::size_t{64} * 1024;

// Descriptors kept back from connections: the listener, standard streams,
// log files.
constexpr std::uint64_t kReservedDescriptors = 16;

// Coroutine mode: the descriptors each event loop holds (its copy of the
// listener, its epoll, eventfd and timerfd).
constexpr unsigned kDescriptorsPerLoop = 4;

unsigned loop_threads(const ServerConfig& config) { return config.threads != 0 ? config.threads : usable_cpus(); }

// --max-connections, or what the descriptors left allow.
unsigned connection_limit(const ServerConfig& config) {
  if (config.max_connections != 0) return config.max_connections;
  const unsigned limit = default_max_connections();
  if (config.mode != Mode::coroutine) return limit;
  const unsigned held = kDescriptorsPerLoop * loop_threads(config);
  return limit > held ? limit - held : 1;
}

}  // namespace

std::string_view to_string(Mode mode) {
  switch (mode) {
    case Mode::thread: return "thread";
    case Mode::sequential: return "sequential";
    case Mode::coroutine: return "coroutine";
  }
  return "?";
}

unsigned usable_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(std::max(1, CPU_COUNT(&set)));
  return std::max(1U, std::thread::hardware_concurrency());
}

unsigned default_max_connections() {
  const std::uint64_t limit = descriptor_limit();
  return static_cast<unsigned>(std::clamp<std::uint64_t>(
      limit > kReservedDescriptors ? limit - kReservedDescriptors : 1, 1, std::numeric_limits<unsigned>::max()));
}

Server::Server(const ServerConfig& config)
    : config_(config),
      handler_(config.algorithm, config.max_n != 0 ? config.max_n : default_max_n(config.algorithm)),
      max_connections_(connection_limit(config)),
      gate_(config.max_computing.value_or(usable_cpus())) {
  listener_ = listen_tcp(config.address, &local_);
  // Set once on the listener, these are inherited by every accepted socket
  // (Linux copies them when it clones the listening socket), which saves
  // three system calls per connection. Nagle off: every reply is a small
  // write the client waits for. The timeouts end idle and stalled clients.
  set_no_delay(listener_.get());
  if (config_.idle_timeout.count() > 0) {
    set_receive_timeout(listener_.get(), config_.idle_timeout);
    set_send_timeout(listener_.get(), config_.idle_timeout);
  }
  parked_.reserve(kMaxParkedThreads);  // parking never allocates, even out of memory
  if (config_.mode == Mode::coroutine) {
    loops_ = std::make_unique<EventLoops>(*this, listener_.get(), loop_threads(config_),
                                          config_.workers != 0 ? config_.workers : usable_cpus());
  }
  // In every mode, so that a SIGUSR1 from outside never ends the process.
  install_thread_wake();
}

// Only a failing mutex could throw here, and then ending the process is all
// that is left to do.
Server::~Server() {  // NOLINT(bugprone-exception-escape)
  stop();
  drain();
}

void Server::run() {
  const std::string loops =
      loops_ ? fmt::format(", {} event loops, {} workers", loops_->threads(), loops_->workers()) : std::string();
  const std::string computing = gate_.limit() == 0
                                    ? std::string("no limit on slow requests at once")
                                    : fmt::format("{} slow request{} at once", gate_.limit(), plural_s(gate_.limit()));
  log_whatever_the_level(fmt::format("listening on {} ({} mode{}, {} fib, n up to {}, at most {} connection{}, {})",
                                     local_.to_string(), to_string(config_.mode), loops,
                                     fib::to_string(handler_.algorithm()), handler_.max_n(), max_connections_,
                                     plural_s(max_connections_), computing));
  // Enforces a stop's timeout (in sequential mode the accept loop itself is
  // busy serving) and logs the statistics.
  std::jthread supervisor([this] { supervise(); });
  if (config_.mode == Mode::sequential) accept_thread_wake();  // this thread serves the connections
  try {
    if (loops_)
      loops_->run();
    else
      accept_loop();
  } catch (...) {
    stop();  // whatever failed, no connection thread outlives run()
    finish();
    throw;
  }
  finish();
}

// After the accept loop (which ends once a stop has shut the listener
// down): wait for every connection and thread, and let the supervisor log
// its last line.
void Server::finish() {
  drain();
  {
    std::lock_guard lock(mutex_);
    finished_ = true;
  }
  changed_.notify_all();
}

ServerStats Server::stats() {
  ServerStats totals;
  std::unique_lock lock(mutex_);
  totals.open = live_.size();
  totals.ended = ended_;
  totals.replies = closed_replies_;
  totals.service_times = closed_service_times_;
  for (const Live& live : live_) live.counters.add_to(totals.replies, totals.service_times);
  totals.threads_parked = parked_.size();
  totals.threads_busy = threads_.size() - parked_.size();
  if (loops_) {
    loops_->add_to(totals);
    totals.open += loops_->open();
  }
  lock.unlock();
  totals.computing = gate_.running();
  totals.waiting_to_compute = gate_.waiting();
  // Read last, so that accepted is never less than the connections open,
  // refused and ended: each was counted as accepted first.
  for (std::size_t i = 0; i < kRefusals; ++i) totals.refused[i] = refused_[i].load(std::memory_order_acquire);
  totals.accepted = accepted_.load(std::memory_order_acquire);
  return totals;
}

unsigned Server::event_loops() const { return loops_ ? loops_->threads() : 0; }
unsigned Server::workers() const { return loops_ ? loops_->workers() : 0; }

void Server::accept_loop() {
  std::chrono::milliseconds backoff{0};
  // Pauses, doubling each time, until a stop; false once stopping.
  const auto pause = [&] {
    backoff = std::clamp(backoff * 2, kAcceptBackoffFirst, kAcceptBackoffMax);
    std::unique_lock lock(mutex_);
    return !changed_.wait_for(lock, backoff, [this] { return stopping_; });
  };
  for (;;) {
    try {
      // A blocking accept: one system call per connection. stop() shuts the
      // listener down, which makes it return.
      Endpoint peer;
      Fd fd = accept_connection(listener_.get(), &peer);
      if (!fd) {
        const int error = errno;
        if (stop_.stopping()) return;
        if (is_resource_shortage(error)) {
          if (backoff.count() == 0) log_accept_paused(error);
          if (!pause()) return;
        } else if (error == EBADF || error == ENOTSOCK || error == EINVAL || error == EFAULT) {
          throw std::system_error(error, std::generic_category(), "accept");  // the listener itself is broken
        }
        // Otherwise the receive timeout inherited from the listener (EAGAIN),
        // or a client gone before we took it (ECONNABORTED and the like):
        // the next one is fine.
        continue;
      }
      backoff = std::chrono::milliseconds{0};
      accept_one(std::move(fd), peer);
    } catch (const std::bad_alloc&) {
      // Out of memory: whatever was being accepted is closed (RAII); wait
      // for memory to free up, as for descriptors.
      if (!pause()) return;
    }
  }
}

// Registers an accepted connection and has it served: by a thread of its
// own, or here in sequential mode.
void Server::accept_one(Fd fd, const Endpoint& peer) {
  accepted_.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock lock(mutex_);
  if (live_.size() >= max_connections_) {
    lock.unlock();
    refuse(std::move(fd), peer);
    return;
  }
  LiveList::iterator self;
  try {
    self = live_.emplace(live_.end());
    self->fd = fd.get();
  } catch (const std::bad_alloc&) {
    lock.unlock();
    turn_away(std::move(fd), peer, "out of memory");
    return;
  }
  // Logged here, on the one accepting thread, not by the connection's own
  // thread: hundreds of new threads would queue for the log's lock, and a
  // stop's log line behind them.
  try {
    spdlog::info("connection from {} opened", peer.to_string());
  } catch (...) {  // out of memory for a log line: the connection is served all the same
  }
  if (config_.mode == Mode::sequential) {
    self->thread = pthread_self();
    lock.unlock();
    serve(std::move(fd), peer, self);
    return;
  }
  hand_over(std::move(fd), peer, self, lock);
}

// No thread for this client (out of threads or memory): say so and hang up.
void Server::turn_away(Fd fd, const Endpoint& peer, std::string_view why) noexcept {
  refused_[static_cast<std::size_t>(Refusal::no_thread)].fetch_add(1, std::memory_order_release);
  const std::uint64_t count = threads_failed_.fetch_add(1, std::memory_order_relaxed) + 1;
  try {  // logging allocates, and memory may be what ran out
    spdlog::warn("cannot start a thread for {}: {} ({} so far)", peer.to_string(), why, count);
  } catch (...) {
  }
  hang_up(fd.get(), "error: server cannot start a thread for this connection; try again later\n");
}

// Over the connection limit: say so and hang up.
void Server::refuse(Fd fd, const Endpoint& peer) noexcept {
  refused_[static_cast<std::size_t>(Refusal::over_limit)].fetch_add(1, std::memory_order_release);
  char message[160];
  std::size_t length = 0;
  try {
    length = std::min(fmt::format_to_n(message, sizeof message,
                                       "error: server busy: {} connection{} open, the most it serves at once; try "
                                       "again later\n",
                                       max_connections_, plural_s(max_connections_))
                          .size,
                      sizeof message);
  } catch (...) {
  }
  try {
    spdlog::info("connection from {} refused: {} connection{} open (--max-connections)", peer.to_string(),
                 max_connections_, plural_s(max_connections_));
  } catch (...) {
  }
  hang_up(fd.get(), {message, length});
}

// Sends `message` and ends our side without blocking the accept loop. What
// the client already sent is read first (up to a bound): left unread, it
// would turn the close into a reset that can overtake the message.
void Server::hang_up(int fd, std::string_view message) noexcept {
  ::send(fd, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  close_gracefully(fd, Clock::now(), kRefusalDiscardBytes);
}

void Server::serve(Fd fd, const Endpoint& peer, LiveList::iterator self) {
  ConnectionResult::End end = ConnectionResult::End::failed;
  try {
    end = serve_and_log(fd.get(), peer, self->counters).end;
  } catch (...) {
    // Out of memory even for a log line: nothing more to say. The
    // connection still ends, and is unregistered, below.
  }
  std::lock_guard lock(mutex_);
  fd.reset();  // closed under the lock, so stop() never shuts down a reused descriptor
  self->counters.add_to(closed_replies_, closed_service_times_);
  ++ended_[static_cast<std::size_t>(end)];
  live_.erase(self);
  if (stopping_) changed_.notify_all();  // only a stop waits for connections to end
}

ConnectionResult Server::serve_and_log(int fd, const Endpoint& peer, ConnectionCounters& counters) {
  const std::string name = peer.to_string();
  const ConnectionResult result = serve_connection(fd, handler_, {&stop_, config_.idle_timeout, &counters, &gate_});
  try {
    log_closed(name, result);
  } catch (...) {  // out of memory for the line: the connection ended all the same
  }
  return result;
}

void Server::log_accept_paused(int error) {
  spdlog::warn("accept: {}; pausing accepts until resources free up", strerror(error));
}

void Server::log_closed(const std::string& name, const ConnectionResult& result) {
  if (result.end == ConnectionResult::End::failed && result.error != 0) {
    spdlog::info("connection from {} closed after {} request{}: {}", name, result.requests, plural_s(result.requests),
                 std::generic_category().message(result.error));
  } else {
    spdlog::info("connection from {} closed after {} request{}: {}", name, result.requests, plural_s(result.requests),
                 to_string(result.end));
  }
}

}  // namespace fib
