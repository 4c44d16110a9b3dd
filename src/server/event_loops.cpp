// Coroutine mode: the event loops, their acceptors and sweepers, and the
// worker pool for slow requests.
#include "event_loops.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <cstring>
#include <latch>
#include <system_error>
#include <thread>

#include <spdlog/spdlog.h>

#include "fib/server/server.h"
#include "priority.h"

namespace fib {

namespace {

using namespace std::chrono_literals;
using asio::awaitable;

constexpr std::chrono::microseconds kWorkerSpin{100};

// How often the sweeper looks at its connections (deadlines, parking): a
// twentieth of the idle timeout, kept between these bounds, and often while
// stopping. A sweep costs a few nanoseconds per connection.
constexpr Clock::duration kSweepMin = 5ms;
constexpr Clock::duration kSweepMax = 25ms;
// Parked connections have only the idle deadline to check: at most this
// often, so that thousands of them cost next to nothing.
constexpr Clock::duration kParkedSweepMax = 1s;
constexpr Clock::duration kSweepStopping = 5ms;
// A connection waiting to receive with nothing pending for this many sweeps
// in a row is parked.
constexpr unsigned kSweepsBeforeParking = 2;

// The time on a thread's CPU clock, in nanoseconds.
std::optional<std::uint64_t> cpu_ns(clockid_t clock) {
  timespec used{};
  if (::clock_gettime(clock, &used) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(used.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(used.tv_nsec);
}

Endpoint to_endpoint(const asio::ip::tcp::endpoint& from) {
  Endpoint to;
  to.length = static_cast<socklen_t>(std::min<std::size_t>(from.size(), sizeof to.storage));
  std::memcpy(&to.storage, from.data(), to.length);
  return to;
}

}  // namespace

EventLoops::EventLoops(Server& server, int listener, unsigned threads, unsigned workers)
    : server_(server),
      policy_{&server.stop_, server.config_.idle_timeout, nullptr, &server.gate_},
      workers_(static_cast<int>(workers)),
      worker_count_(workers) {
  const auto protocol =
      server.local_endpoint().storage.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4();
  for (unsigned i = 0; i < threads; ++i) {
    auto loop = std::make_unique<EventLoop>();
    // Every loop waits on the one listening socket; whichever is free takes
    // the next connection, and keeps it.
    Fd copy(::fcntl(listener, F_DUPFD_CLOEXEC, 0));
    if (!copy) throw std::system_error(errno, std::generic_category(), "dup listener");
    loop->acceptor.emplace(loop->io, protocol, copy.get());
    copy.release();
    loops_.push_back(std::move(loop));
  }
}

EventLoops::~EventLoops() = default;

void EventLoops::run() {
  auto keep_workers = asio::make_work_guard(workers_);
  std::vector<std::thread> workers, loops;
  // A loop whose thread has ended waits for the others: no thread is left
  // finished and unjoined while another loop still serves (a second signal
  // exits at once, and ThreadSanitizer counts such a thread as leaked).
  std::latch ended(static_cast<std::ptrdiff_t>(loops_.size()));
  bool started = true;
  try {
    for (unsigned i = 0; i < worker_count_; ++i) {
      workers.emplace_back([this] { run_worker(); });
    }
    for (std::size_t i = 1; i < loops_.size(); ++i) {
      loops.emplace_back([this, i, &ended] {
        run_loop(*loops_[i]);
        ended.arrive_and_wait();
      });
    }
  } catch (...) {
    started = false;
    ended.count_down(static_cast<std::ptrdiff_t>(loops_.size() - loops.size()));  // this one and those never started
    fail(std::current_exception());  // stops the server: the loops started end
  }
  if (started) {
    run_loop(*loops_[0]);
    ended.arrive_and_wait();
  }
  for (std::thread& loop : loops) loop.join();
  keep_workers.reset();
  for (std::thread& worker : workers) worker.join();
  if (failure_) std::rethrow_exception(failure_);
}

// A worker runs slow requests; out of them, it keeps looking for the next
// one for kWorkerSpin before it sleeps. Waking a sleeping thread costs tens
// of microseconds on a virtual machine, a slow request a millisecond or
// more: a client asking for one after another (fib(30) in a closed loop)
// would otherwise pay that wake-up on every request.
void EventLoops::run_worker() {
  lower_priority();
  Clock::time_point spin_until = Clock::now() + kWorkerSpin;
  for (;;) {
    if (workers_.poll_one() > 0) {
      spin_until = Clock::now() + kWorkerSpin;
    } else if (Clock::now() >= spin_until) {
      if (workers_.run_one() == 0) return;  // no work left, none to come: the server has stopped
      spin_until = Clock::now() + kWorkerSpin;
    }
  }
}

void EventLoops::run_loop(EventLoop& loop) {
  if (::pthread_getcpuclockid(::pthread_self(), &loop.cpu_clock) == 0)
    loop.running.store(true, std::memory_order_release);
  const auto on_failure = [this](const std::exception_ptr& error) {
    if (error) fail(error);
  };
  asio::co_spawn(loop.io, accept(loop), on_failure);
  asio::co_spawn(loop.io, sweep(loop), on_failure);
  for (;;) {
    try {
      loop.io.run();
      break;
    } catch (...) {
      fail(std::current_exception());
    }
  }
  const std::optional<std::uint64_t> used =
      loop.running.load(std::memory_order_relaxed) ? cpu_ns(loop.cpu_clock) : std::nullopt;
  if (used) loop.cpu_ns_at_end.store(*used, std::memory_order_relaxed);
  loop.running.store(false, std::memory_order_release);
}

void EventLoops::fail(std::exception_ptr error) {
  {
    std::lock_guard lock(failure_mutex_);
    if (!failure_) failure_ = std::move(error);
  }
  server_.stop();
}

void EventLoops::stop() {
  for (const auto& loop : loops_) {
    asio::post(loop->io, [&loop = *loop] {
      asio::error_code ignored;
      if (loop.acceptor) loop.acceptor->close(ignored);
      if (loop.accept_pause != nullptr) loop.accept_pause->cancel();  // out of descriptors: stop waiting
      for (LoopConnection& connection : loop.connections)
        if (connection.waiting == LoopConnection::Waiting::receive) connection.socket.cancel(ignored);
      for (LoopConnection& connection : loop.parked) connection.socket.cancel(ignored);
      if (loop.sweep_timer != nullptr) loop.sweep_timer->cancel();
    });
  }
}

void EventLoops::abandon() {
  for (const auto& loop : loops_) {
    asio::post(loop->io, [&loop = *loop] {
      loop.send_limit = Clock::now() + Server::kStopGrace;
      if (loop.sweep_timer != nullptr) loop.sweep_timer->cancel();
    });
  }
}

std::uint64_t EventLoops::open() const { return open_.load(std::memory_order_relaxed); }

void EventLoops::add_to(ServerStats& stats) const {
  for (const auto& loop : loops_) {
    loop->totals.add_to(stats.replies, stats.service_times);
    for (std::size_t i = 0; i < kConnectionEnds; ++i) stats.ended[i] += loop->ended[i].load(std::memory_order_relaxed);
    stats.at_workers += loop->at_workers.load(std::memory_order_relaxed);
    // A thread that has just ended has no clock any more: what it read last.
    std::optional<std::uint64_t> now;
    if (loop->running.load(std::memory_order_acquire)) now = cpu_ns(loop->cpu_clock);
    if (!now) now = loop->cpu_ns_at_end.load(std::memory_order_relaxed);
    // Never less than an earlier scrape saw: a counter only goes up.
    std::uint64_t seen = loop->cpu_ns_reported.load(std::memory_order_relaxed);
    while (seen < *now && !loop->cpu_ns_reported.compare_exchange_weak(seen, *now, std::memory_order_relaxed)) {
    }
    stats.loop_cpu_ns += std::max(seen, *now);
  }
}

awaitable<void> EventLoops::accept(EventLoop& loop) {
  std::chrono::milliseconds backoff{0};
  asio::steady_timer pause(loop.io);
  loop.accept_pause = &pause;
  asio::ip::tcp::endpoint peer;
  while (!server_.stop_.stopping()) {
    auto [error, socket] = co_await loop.acceptor->async_accept(peer, kNoThrow);
    if (error) {
      if (server_.stop_.stopping()) break;
      if (is_resource_shortage(error.value())) {
        // Out of descriptors or memory: pause, as the thread mode does.
        if (backoff.count() == 0) Server::log_accept_paused(error.value());
        backoff = std::clamp(backoff * 2, Server::kAcceptBackoffFirst, Server::kAcceptBackoffMax);
        pause.expires_after(backoff);
        co_await pause.async_wait(kNoThrow);
        continue;
      }
      if (error == asio::error::bad_descriptor || error == asio::error::invalid_argument ||
          error == asio::error::not_socket || error == asio::error::operation_aborted)
        throw std::system_error(error.value(), std::generic_category(), "accept");  // the listener itself is broken
      continue;  // a client gone before we took it: the next one is fine
    }
    backoff = std::chrono::milliseconds{0};
    // Non-blocking for Asio too, not only underneath: a synchronous
    // write_some into a full send buffer then says would_block instead of
    // waiting in poll(), which would hold up every connection of the loop
    // and the sweeper that cuts off a client that stopped reading.
    asio::error_code blocking;
    socket.non_blocking(true, blocking);
    server_.accepted_.fetch_add(1, std::memory_order_relaxed);
    if (open_.fetch_add(1, std::memory_order_relaxed) >= server_.max_connections_) {
      open_.fetch_sub(1, std::memory_order_relaxed);
      server_.refuse(Fd(socket.release()), to_endpoint(peer));
      continue;
    }
    LoopConnections::iterator connection;
    try {
      // The printable name only, not the address, lives as long as the
      // connection: an idle connection should cost little memory.
      connection = loop.connections.emplace(loop.connections.end(), std::move(socket), to_endpoint(peer).to_string());
    } catch (const std::bad_alloc&) {
      open_.fetch_sub(1, std::memory_order_relaxed);
      server_.refused_[static_cast<std::size_t>(Refusal::no_thread)].fetch_add(1, std::memory_order_release);
      continue;  // the socket, wherever it is, closes
    }
    add(loop.open, 1);
    try {
      spdlog::info("connection from {} opened", connection->name);
    } catch (...) {  // out of memory for a log line: the connection is served all the same
    }
    start(loop, connection);
  }
  loop.accept_pause = nullptr;
  asio::error_code ignored;
  loop.acceptor->close(ignored);
}

awaitable<void> EventLoops::serve(EventLoop& loop, LoopConnections::iterator connection) {
  bool ended = false;  // connection->result says how
  try {
    const std::optional<ConnectionResult> result =
        co_await serve_connection_async(*connection, loop, server_.handler_, policy_, workers_.get_executor());
    if (!result) {
      park(loop, connection);
      co_return;
    }
    ended = true;
    Server::log_closed(connection->name, *result);
  } catch (...) {
    // Out of memory, even for a log line: nothing more to say. The
    // connection still ends, and is counted out, below.
    if (!ended) connection->result.end = ConnectionResult::End::failed;
  }
  end(loop, connection);
}

void EventLoops::start(EventLoop& loop, LoopConnections::iterator connection) noexcept {
  try {
    asio::co_spawn(loop.io, serve(loop, connection), asio::detached);
  } catch (...) {
    connection->result.end = ConnectionResult::End::failed;
    end(loop, connection);  // out of memory for a coroutine: the connection closes
  }
}

void EventLoops::end(EventLoop& loop, LoopConnections::iterator connection) noexcept {
  add(loop.ended[static_cast<std::size_t>(connection->result.end)], 1);
  loop.connections.erase(connection);  // closes the socket
  open_.fetch_sub(1, std::memory_order_relaxed);
  add(loop.open, -1);
}

// The parked connection's coroutine has ended; what is left waits for input
// with a plain handler (no frame), and starts a new coroutine when input,
// the sweeper (idle) or a stop ends the wait.
void EventLoops::park(EventLoop& loop, LoopConnections::iterator connection) noexcept {
  if (server_.stop_.stopping()) {  // the stop has cancelled every wait already
    start(loop, connection);
    return;
  }
  const auto serve_again = [this, &loop, connection](const asio::error_code& /*any: the coroutine sees why*/) {
    connection->waiting = LoopConnection::Waiting::nothing;
    loop.connections.splice(loop.connections.end(), loop.parked, connection);
    start(loop, connection);
  };
  connection->waiting = LoopConnection::Waiting::parked;
  connection->expired = connection->park = false;
  connection->deadline =
      policy_.idle_timeout.count() > 0 ? connection->last_valid + policy_.idle_timeout : Clock::time_point::max();
  try {
    connection->socket.async_wait(asio::socket_base::wait_read, serve_again);
  } catch (...) {
    connection->result.end = ConnectionResult::End::failed;
    end(loop, connection);  // out of memory for the wait: the connection closes
    return;
  }
  // Armed first: the wait cannot end before this (the loop runs it later).
  loop.parked.splice(loop.parked.end(), loop.connections, connection);
}

// Cancels the wait of a connection past its deadline, or one to park.
void EventLoops::sweep(EventLoop& loop, LoopConnections& connections, Clock::time_point now) {
  using Waiting = LoopConnection::Waiting;
  for (LoopConnection& connection : connections) {
    if (connection.waiting == Waiting::nothing || connection.expired || connection.park) continue;
    const Clock::time_point deadline =
        connection.waiting == Waiting::send ? std::min(connection.deadline, loop.send_limit) : connection.deadline;
    if (now >= deadline) {
      connection.expired = true;
    } else if (connection.waiting == Waiting::receive && connection.resting &&
               ++connection.rest_sweeps >= kSweepsBeforeParking) {
      connection.park = true;
    } else {
      continue;
    }
    asio::error_code ignored;
    connection.socket.cancel(ignored);
  }
}

awaitable<void> EventLoops::sweep(EventLoop& loop) {
  asio::steady_timer timer(loop.io);
  loop.sweep_timer = &timer;
  const std::chrono::milliseconds idle = server_.config_.idle_timeout;
  const auto every = [idle](Clock::duration most) {
    return idle.count() > 0 ? std::clamp<Clock::duration>(idle / 20, kSweepMin, most) : most;
  };
  const Clock::duration tick = every(kSweepMax), parked_tick = every(kParkedSweepMax);
  Clock::time_point next_parked_sweep = Clock::now() + parked_tick;
  for (;;) {
    const bool stopping = server_.stop_.stopping();
    if (stopping && loop.open.load(std::memory_order_relaxed) == 0 && !loop.acceptor->is_open()) break;
    timer.expires_after(stopping ? kSweepStopping : tick);
    co_await timer.async_wait(kNoThrow);
    const Clock::time_point now = Clock::now();
    sweep(loop, loop.connections, now);
    if (now >= next_parked_sweep) {
      sweep(loop, loop.parked, now);
      next_parked_sweep = now + parked_tick;
    }
  }
  loop.sweep_timer = nullptr;
}

}  // namespace fib
