#include "fib_server/server.h"

#include <sys/socket.h>

#include <utility>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <system_error>

#include <fmt/format.h>

#include <spdlog/spdlog.h>

#include "fib_server/address.h"
#include "fib_server/connection.h"

namespace fib {

namespace {

// Out of descriptors or memory, accept fails again at once: wait, doubling
// the pause up to a limit, as Go's net/http does, instead of spinning.
constexpr std::chrono::milliseconds kAcceptBackoffFirst{5};
constexpr std::chrono::milliseconds kAcceptBackoffMax{1000};

// Connection threads kept parked for the next connections.
constexpr std::size_t kMaxParkedThreads = 64;

// Descriptors kept back from connections: the listener, the wake-up
// eventfd, standard streams, log files.
constexpr std::uint64_t kReservedDescriptors = 16;

bool is_resource_shortage(int error) {
  return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
}

std::string_view to_string(Mode mode) { return mode == Mode::thread ? "thread" : "sequential"; }

}  // namespace

unsigned default_max_connections() {
  const std::uint64_t limit = descriptor_limit();
  return static_cast<unsigned>(std::clamp<std::uint64_t>(limit > kReservedDescriptors ? limit - kReservedDescriptors : 1,
                                                          1, std::numeric_limits<unsigned>::max()));
}

Server::Server(const ServerConfig& config)
    : config_(config),
      handler_(config.algorithm, config.max_n != 0 ? config.max_n : default_max_n(config.algorithm)),
      max_connections_(config.max_connections != 0 ? config.max_connections : default_max_connections()) {
  listener_ = listen_tcp(parse_host_port(config.address), &local_);
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
}

Server::~Server() {
  stop();
  drain();
}

void Server::run() {
  spdlog::info("listening on {} ({} mode, {} fib, n up to {}, at most {} connections)", local_.to_string(),
               to_string(config_.mode), fib::to_string(handler_.algorithm()), handler_.max_n(), max_connections_);
  std::thread reporter;
  if (config_.stats_interval.count() > 0) reporter = std::thread([this] { report_stats(); });
  try {
    accept_loop();
  } catch (...) {
    stop();  // whatever failed, no connection thread outlives run()
    drain();
    if (reporter.joinable()) reporter.join();
    throw;
  }
  {
    std::lock_guard lock(mutex_);
    listener_.reset();  // stop accepting: new clients are refused from here on
  }
  drain();
  if (reporter.joinable()) reporter.join();  // logs the final line once all connections are closed
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

// One line every stats_interval, and a last one once the server has stopped
// and every connection is closed.
void Server::report_stats() {
  using Clock = std::chrono::steady_clock;
  Clock::time_point last_time = Clock::now();
  std::uint64_t last_requests = 0;
  for (bool last = false; !last;) {
    {
      std::unique_lock lock(mutex_);
      last = changed_.wait_for(lock, config_.stats_interval,
                               [this] { return stopping_ && live_.empty() && workers_.empty(); });
    }
    const ServerStats now = stats();
    const Clock::time_point time = Clock::now();
    const double seconds = std::chrono::duration<double>(time - last_time).count();
    const double rps = seconds > 0 ? static_cast<double>(now.requests - last_requests) / seconds : 0;
    spdlog::info("stats{}: {} connections open, {} accepted, {} refused, {} requests served ({:.0f} req/s), {} errors",
                 last ? " at shutdown" : "", now.open, now.accepted, now.refused, now.requests, rps, now.errors);
    last_time = time;
    last_requests = now.requests;
  }
}

void Server::accept_loop() {
  std::chrono::milliseconds backoff{0};
  for (;;) {
    // A blocking accept: one system call per connection. stop() shuts the
    // listener down, which makes it return.
    Endpoint peer;
    Fd fd = accept_connection(listener_.get(), &peer);
    if (!fd) {
      const int error = errno;
      std::unique_lock lock(mutex_);
      if (stopping_) return;
      if (is_resource_shortage(error)) {
        lock.unlock();
        if (backoff.count() == 0) spdlog::warn("accept: {}; pausing accepts until resources free up",
                                               std::generic_category().message(error));
        backoff = std::clamp(backoff * 2, kAcceptBackoffFirst, kAcceptBackoffMax);
        lock.lock();
        changed_.wait_for(lock, backoff, [this] { return stopping_; });  // a stop cuts the pause short
      } else {
        // ECONNABORTED and the like: that client is gone, the next one is not.
        lock.unlock();
        spdlog::debug("accept: {}", std::generic_category().message(error));
      }
      continue;
    }
    backoff = std::chrono::milliseconds{0};
    accepted_.fetch_add(1, std::memory_order_relaxed);

    std::unique_lock lock(mutex_);
    if (live_.size() >= max_connections_) {
      lock.unlock();
      refuse(std::move(fd), peer);
      continue;
    }
    LiveList::iterator self;
    try {
      self = live_.emplace(live_.end());
      self->fd = fd.get();
    } catch (const std::bad_alloc&) {
      lock.unlock();
      turn_away(std::move(fd), peer, "out of memory");
      continue;
    }
    if (stopping_) ::shutdown(fd.get(), SHUT_RD);  // stop() ran before we registered it
    if (config_.mode == Mode::sequential) {
      lock.unlock();
      serve(std::move(fd), peer, self);
      continue;
    }
    hand_over(std::move(fd), peer, self, lock);
  }
}

// Gives the connection to a parked thread, or to a new one.
void Server::hand_over(Fd fd, const Endpoint& peer, LiveList::iterator self, std::unique_lock<std::mutex>& lock) {
  if (!parked_.empty()) {
    Worker* worker = parked_.back();
    parked_.pop_back();
    worker->job = Job{fd.release(), peer, self};
    worker->wake.notify_one();
    return;
  }
  try {
    const auto worker = workers_.emplace(workers_.end());
    worker->job = Job{fd.get(), peer, self};
    try {
      worker->thread = std::thread([this, worker] { work(worker); });
    } catch (...) {
      workers_.erase(worker);
      throw;
    }
    fd.release();  // the thread has it now; on failure it is still ours to answer and close
  } catch (const std::exception& e) {  // std::system_error, or std::bad_alloc
    live_.erase(self);
    lock.unlock();
    turn_away(std::move(fd), peer, e.what());
  }
}

// A connection thread's life: serve, park, serve again; retire when the
// server stops or enough threads are parked already.
void Server::work(WorkerList::iterator self) {
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
  workers_.erase(self);
  changed_.notify_all();
  lock.unlock();
  if (previous.joinable()) previous.join();
}

// No thread for this client (out of threads or memory): say so and hang up.
void Server::turn_away(Fd fd, const Endpoint& peer, std::string_view why) {
  refused_.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t count = threads_failed_.fetch_add(1, std::memory_order_relaxed) + 1;
  spdlog::warn("cannot start a thread for {}: {} ({} so far)", peer.to_string(), why, count);
  hang_up(fd.get(), "error: server cannot start a thread for this connection; try again later\n");
}

// Over the connection limit: say so and hang up.
void Server::refuse(Fd fd, const Endpoint& peer) {
  refused_.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("connection from {} refused: {} connections open (--max-connections)", peer.to_string(),
               max_connections_);
  hang_up(fd.get(), fmt::format("error: server busy: {} connections open, the most it serves at once; try again "
                                "later\n",
                                max_connections_));
}

// Sends `message` and ends our side without blocking the accept loop. What
// the client already sent is read first: left unread, it would turn the
// close into a reset that can overtake the message.
void Server::hang_up(int fd, std::string_view message) {
  ::send(fd, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(fd, SHUT_WR);
  char scratch[512];
  while (::recv(fd, scratch, sizeof scratch, MSG_DONTWAIT) > 0) {
  }
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
  changed_.notify_all();
}

void Server::serve_and_log(int fd, const Endpoint& peer, ConnectionCounters& counters) {
  const std::string name = peer.to_string();
  spdlog::info("connection from {} opened", name);
  const ConnectionResult result = serve_connection(fd, handler_, {&deadline_, config_.idle_timeout, &counters});
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
  deadline_.set(std::chrono::steady_clock::now() + config_.shutdown_timeout);
  if (listener_) ::shutdown(listener_.get(), SHUT_RD);  // wakes the blocked accept
  changed_.notify_all();                                 // and an accept loop backing off
  // Idle connections see end of stream at once; busy ones after their
  // current requests are answered. Parked threads retire.
  for (const Live& live : live_) ::shutdown(live.fd, SHUT_RD);
  for (Worker* worker : parked_) worker->wake.notify_one();
}

void Server::drain() {
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, config_.shutdown_timeout, [this] { return live_.empty(); })) {
    // Requests not yet started are abandoned (the deadline has passed); a
    // reply stuck in a send to a client that stopped reading is given up.
    spdlog::warn("{} connections still busy after {} ms; closing them", live_.size(),
                 config_.shutdown_timeout.count());
    for (const Live& live : live_) ::shutdown(live.fd, SHUT_RDWR);
  }
  changed_.wait(lock, [this] { return live_.empty() && workers_.empty(); });
  std::thread last = std::move(last_retired_);
  lock.unlock();
  if (last.joinable()) last.join();
}

}  // namespace fib
