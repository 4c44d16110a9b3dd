#include "fib/server/server.h"
#include "fib/core/clock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>

#include <utility>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <system_error>

#include <fmt/format.h>

#include <spdlog/spdlog.h>

#include "fib/core/address.h"
#include "fib/server/connection.h"

namespace fib {

namespace {

// Out of descriptors or memory, accept fails again at once: wait, doubling
// the pause up to a limit, as Go's net/http does, instead of spinning.
constexpr std::chrono::milliseconds kAcceptBackoffFirst{5};
constexpr std::chrono::milliseconds kAcceptBackoffMax{1000};

// Connection threads kept parked for the next connections.
constexpr std::size_t kMaxParkedThreads = 64;

// A stop wakes connection threads blocked in a receive with this signal: its
// handler does nothing, and is installed without SA_RESTART, so the receive
// fails with EINTR. A thread that was just about to block when the signal
// came misses it, so the signal is sent again, further apart each time (the
// first pause, doubling to the last), until every connection has ended.
// Past the shutdown timeout one more round makes sends in progress start
// again under the short timeout; from then on the repeats are rare, so that
// they do not keep restarting that timeout.
constexpr int kWakeSignal = SIGUSR1;
constexpr std::chrono::milliseconds kWakeRepeatFirst{5};
constexpr std::chrono::milliseconds kWakeRepeatMax{100};
constexpr std::chrono::milliseconds kWakeRepeatAfterTimeout{1000};

void install_wake_handler() {
  struct sigaction action {};
  action.sa_handler = [](int) {};
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: interrupt blocking calls
  sigaction(kWakeSignal, &action, nullptr);
}

// Connection threads take the wake signal even if the program that runs the
// server blocks it.
void accept_wake_signal() {
  sigset_t wake;
  sigemptyset(&wake);
  sigaddset(&wake, kWakeSignal);
  pthread_sigmask(SIG_UNBLOCK, &wake, nullptr);
}

// What the client already sent and a refusal reads before closing, at most.
constexpr std::size_t kRefusalDiscardBytes = std::size_t{64} * 1024;

// Descriptors kept back from connections: the listener, standard streams,
// log files.
constexpr std::uint64_t kReservedDescriptors = 16;

bool is_resource_shortage(int error) {
  return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
}

std::string_view to_string(Mode mode) { return mode == Mode::thread ? "thread" : "sequential"; }

}  // namespace

unsigned default_max_connections() {
  const std::uint64_t limit = descriptor_limit();
  return static_cast<unsigned>(std::clamp<std::uint64_t>(
      limit > kReservedDescriptors ? limit - kReservedDescriptors : 1, 1, std::numeric_limits<unsigned>::max()));
}

Server::Server(const ServerConfig& config)
    : config_(config),
      handler_(config.algorithm, config.max_n != 0 ? config.max_n : default_max_n(config.algorithm)),
      max_connections_(config.max_connections != 0 ? config.max_connections : default_max_connections()) {
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
  install_wake_handler();
}

// Only a failing mutex could throw here, and then ending the process is all
// that is left to do.
Server::~Server() {  // NOLINT(bugprone-exception-escape)
  stop();
  drain();
}

void Server::run() {
  spdlog::info("listening on {} ({} mode, {} fib, n up to {}, at most {} connections)", local_.to_string(),
               to_string(config_.mode), fib::to_string(handler_.algorithm()), handler_.max_n(), max_connections_);
  // Enforces a stop's timeout (in sequential mode the accept loop itself is
  // busy serving) and logs the statistics.
  std::jthread supervisor([this] { supervise(); });
  if (config_.mode == Mode::sequential) accept_wake_signal();  // this thread serves the connections
  try {
    accept_loop();
  } catch (...) {
    stop();  // whatever failed, no connection thread outlives run()
    finish();
    throw;
  }
  finish();
}

// After the accept loop: stop accepting, wait for every connection and
// thread, and let the supervisor log its last line.
void Server::finish() {
  {
    std::lock_guard lock(mutex_);
    listener_.reset();  // new clients are refused from here on
  }
  drain();
  {
    std::lock_guard lock(mutex_);
    finished_ = true;
  }
  changed_.notify_all();
}

ServerStats Server::stats() {
  ServerStats totals;
  totals.accepted = accepted_.load(std::memory_order_relaxed);
  totals.refused = refused_.load(std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  totals.open = live_.size();
  totals.requests = closed_requests_;
  totals.errors = closed_errors_;
  for (const Live& live : live_) {
    totals.requests += live.counters.requests.load(std::memory_order_relaxed);
    totals.errors += live.counters.errors.load(std::memory_order_relaxed);
  }
  return totals;
}

// Until a stop: a statistics line every stats_interval (if set). From the
// stop: wakes connection threads blocked in a receive until every connection
// has ended; at the shutdown timeout, gives up on requests not yet answered
// and lets sends take at most kStopGrace more. Last: the statistics at
// shutdown, once everything has ended.
void Server::supervise() {
  const bool reporting = config_.stats_interval.count() > 0;
  Clock::time_point last_time = Clock::now();
  std::uint64_t last_requests = 0;
  const auto report = [&](bool final) {
    const ServerStats now = stats();
    const Clock::time_point time = Clock::now();
    const double seconds = std::chrono::duration<double>(time - last_time).count();
    const double rps = seconds > 0 ? static_cast<double>(now.requests - last_requests) / seconds : 0;
    spdlog::info("stats{}: {} connections open, {} accepted, {} refused, {} requests served ({:.0f} req/s), {} errors",
                 final ? " at shutdown" : "", now.open, now.accepted, now.refused, now.requests, rps, now.errors);
    last_time = time;
    last_requests = now.requests;
  };

  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (!reporting) {
      changed_.wait(lock, [this] { return stopping_; });
    } else if (!changed_.wait_for(lock, config_.stats_interval, [this] { return stopping_; })) {
      lock.unlock();
      report(false);
      lock.lock();
    }
  }
  const auto wake_all = [this] {
    for (const Live& live : live_) pthread_kill(live.thread, kWakeSignal);
  };
  std::chrono::milliseconds pause = kWakeRepeatFirst;
  bool abandoned = false;
  wake_all();
  while (!live_.empty()) {
    const Clock::time_point next = Clock::now() + pause;
    changed_.wait_until(lock, abandoned ? next : std::min(next, stop_deadline_), [this] { return live_.empty(); });
    if (live_.empty()) break;
    if (!abandoned && Clock::now() >= stop_deadline_) {
      abandoned = true;
      stop_.abandon();
      for (const Live& live : live_) {
        try {  // a send in progress starts again under this timeout when the signal below interrupts it
          set_send_timeout(live.fd, kStopGrace);
        } catch (const std::system_error&) {
        }
      }
      const std::size_t open = live_.size();
      lock.unlock();
      spdlog::warn(
          "{} connections still open after {} ms: requests not answered yet are given up, and they close "
          "within {} ms",
          open, config_.shutdown_timeout.count(), kStopGrace.count());
      lock.lock();
    }
    pause = abandoned ? kWakeRepeatAfterTimeout : std::min(pause * 2, kWakeRepeatMax);
    wake_all();
  }
  changed_.wait(lock, [this] { return finished_; });
  lock.unlock();
  if (reporting) report(true);
}

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
        {
          std::lock_guard lock(mutex_);
          if (stopping_) return;
        }
        if (is_resource_shortage(error)) {
          if (backoff.count() == 0)
            spdlog::warn("accept: {}; pausing accepts until resources free up", strerror(error));
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
  if (config_.mode == Mode::sequential) {
    self->thread = pthread_self();
    lock.unlock();
    serve(std::move(fd), peer, self);
    return;
  }
  hand_over(std::move(fd), peer, self, lock);
}

// Gives the connection to a parked thread, or to a new one.
void Server::hand_over(Fd fd, const Endpoint& peer, LiveList::iterator self, std::unique_lock<std::mutex>& lock) {
  if (!parked_.empty()) {
    ConnectionThread* worker = parked_.back();
    parked_.pop_back();
    self->thread = worker->thread.native_handle();
    worker->job = Job{fd.release(), peer, self};
    worker->wake.notify_one();
    return;
  }
  try {
    const auto worker = threads_.emplace(threads_.end());
    worker->job = Job{fd.get(), peer, self};
    try {
      worker->thread = std::thread([this, worker] { work(worker); });
      self->thread = worker->thread.native_handle();
    } catch (...) {
      threads_.erase(worker);
      throw;
    }
    fd.release();                      // the thread has it now; on failure it is still ours to answer and close
  } catch (const std::exception& e) {  // std::system_error, or std::bad_alloc
    live_.erase(self);
    lock.unlock();
    turn_away(std::move(fd), peer, e.what());
  }
}

// A connection thread's life: serve, park, serve again; retire when the
// server stops or enough threads are parked already.
void Server::work(ConnectionThreadList::iterator self) {
  accept_wake_signal();
  std::unique_lock lock(mutex_);
  for (;;) {
    Job job = *self->job;
    self->job.reset();
    lock.unlock();
    serve(Fd(job.fd), job.peer, job.self);
    lock.lock();
    if (stopping_ || parked_.size() >= kMaxParkedThreads) break;
    parked_.push_back(&*self);
    self->wake.wait(lock, [&] { return self->job.has_value() || stopping_; });
    if (!self->job) {  // stopping, and still parked
      std::erase(parked_, &*self);
      break;
    }
  }
  // Retire. Each retiring thread joins the one that retired before it, so at
  // most one ended thread is ever left unjoined, and drain() joins that one.
  std::thread previous = std::exchange(last_retired_, std::move(self->thread));
  threads_.erase(self);
  if (stopping_) changed_.notify_all();
  lock.unlock();
  if (previous.joinable()) previous.join();
}

// No thread for this client (out of threads or memory): say so and hang up.
void Server::turn_away(Fd fd, const Endpoint& peer, std::string_view why) noexcept {
  refused_.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t count = threads_failed_.fetch_add(1, std::memory_order_relaxed) + 1;
  try {  // logging allocates, and memory may be what ran out
    spdlog::warn("cannot start a thread for {}: {} ({} so far)", peer.to_string(), why, count);
  } catch (...) {
  }
  hang_up(fd.get(), "error: server cannot start a thread for this connection; try again later\n");
}

// Over the connection limit: say so and hang up.
void Server::refuse(Fd fd, const Endpoint& peer) noexcept {
  refused_.fetch_add(1, std::memory_order_relaxed);
  char message[160];
  std::size_t length = 0;
  try {
    length = std::min(fmt::format_to_n(message, sizeof message,
                                       "error: server busy: {} connections open, the most it serves at once; try "
                                       "again later\n",
                                       max_connections_)
                          .size,
                      sizeof message);
  } catch (...) {
  }
  try {
    spdlog::info("connection from {} refused: {} connections open (--max-connections)", peer.to_string(),
                 max_connections_);
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
  try {
    serve_and_log(fd.get(), peer, self->counters);
  } catch (...) {
    // Out of memory even for a log line: nothing more to say. The
    // connection still ends, and is unregistered, below.
  }
  std::lock_guard lock(mutex_);
  fd.reset();  // closed under the lock, so stop() never shuts down a reused descriptor
  closed_requests_ += self->counters.requests.load(std::memory_order_relaxed);
  closed_errors_ += self->counters.errors.load(std::memory_order_relaxed);
  live_.erase(self);
  if (stopping_) changed_.notify_all();  // only a stop waits for connections to end
}

void Server::serve_and_log(int fd, const Endpoint& peer, ConnectionCounters& counters) {
  const std::string name = peer.to_string();
  spdlog::info("connection from {} opened", name);
  const ConnectionResult result = serve_connection(fd, handler_, {&stop_, config_.idle_timeout, &counters});
  if (result.end == ConnectionResult::End::failed && result.error != 0) {
    spdlog::info("connection from {} closed after {} requests: {}", name, result.requests,
                 std::generic_category().message(result.error));
  } else {
    spdlog::info("connection from {} closed after {} requests: {}", name, result.requests, to_string(result.end));
  }
}

void Server::stop() {
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  stopping_ = true;
  stop_deadline_ = Clock::now() + config_.shutdown_timeout;
  stop_.begin(stop_deadline_ + kStopGrace);
  if (listener_) {
    tell_backlog_stopping();
    ::shutdown(listener_.get(), SHUT_RD);  // wakes the blocked accept
  }
  changed_.notify_all();  // the supervisor wakes the connections; an accept loop backing off ends
  for (ConnectionThread* worker : parked_) worker->wake.notify_one();  // parked threads retire
}

// Clients that connected but were not accepted yet (sequential mode, or a
// burst) sent requests nobody read: they get the stopping line and a graceful
// close instead of the reset that shutting down the listener would send
// them. Never blocks: the listener turns non-blocking (a thread already
// blocked in accept stays blocked until the shutdown that follows).
void Server::tell_backlog_stopping() noexcept {
  const int flags = ::fcntl(listener_.get(), F_GETFL);
  if (flags < 0 || ::fcntl(listener_.get(), F_SETFL, flags | O_NONBLOCK) != 0) return;
  for (;;) {
    Endpoint peer;
    Fd fd = accept_connection(listener_.get(), &peer);
    if (!fd) return;
    accepted_.fetch_add(1, std::memory_order_relaxed);
    hang_up(fd.get(), kStoppingReply);
  }
}

void Server::drain() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return live_.empty() && threads_.empty(); });
  std::thread last = std::move(last_retired_);
  lock.unlock();
  if (last.joinable()) last.join();
}

}  // namespace fib
