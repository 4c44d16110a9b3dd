#include "uring_loop.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <asio/post.hpp>
#include <cerrno>
#include <chrono>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>

#include "fib/net/socket.h"

namespace fib {

namespace {

using namespace std::chrono_literals;
using Cut = ConnectionDriver::Cut;
using Do = ConnectionDriver::Do;
using Waiting = UringConnection::Waiting;

// Entries per ring: a round of every connection's next operation fits in a
// few submissions.
constexpr unsigned kRingEntries = 4096;
// How often the sweeper looks at deadlines: a twentieth of the idle
// timeout, kept between these bounds, and often while stopping.
constexpr Clock::duration kSweepMin = 5ms;
constexpr Clock::duration kSweepMax = 25ms;
constexpr Clock::duration kSweepStopping = 5ms;

__kernel_timespec timespec_of(Clock::duration duration) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::max(duration, Clock::duration::zero()));
  return {.tv_sec = ns.count() / 1'000'000'000, .tv_nsec = ns.count() % 1'000'000'000};
}

// The slow request a session stopped at, computed on a worker (see
// compute_slow()); the connection's coroutine waits meanwhile, so nothing
// else touches the session and its answers stay in order.
class Computation final : public uring::Completion {
 public:
  Computation(uring::Mailbox& mailbox, WorkerPool& workers, std::atomic<std::uint64_t>& at_workers, Session& session,
              int fd, const ConnectionRules& rules)
      : mailbox_(mailbox), workers_(workers), at_workers_(at_workers), session_(session), fd_(fd), rules_(rules) {}

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> handle) {
    handle_ = handle;
    asio::post(workers_.executor(), [this] {
      computed_ = compute_slow(session_, fd_, rules_);
      mailbox_.post(this);  // its lock orders computed_ before the loop reads it
    });
    add(at_workers_, 1);
  }
  Computed await_resume() {
    add(at_workers_, -1);
    return computed_;
  }
  void complete(int /*result*/, unsigned /*flags*/) override { handle_.resume(); }

 private:
  uring::Mailbox& mailbox_;
  WorkerPool& workers_;
  std::atomic<std::uint64_t>& at_workers_;
  Session& session_;
  const int fd_;
  const ConnectionRules& rules_;
  std::coroutine_handle<> handle_;
  Computed computed_ = Computed::given_up;
};

auto receive(uring::Ring& ring, UringConnection& connection, std::span<char> space) {
  return uring::Operation(ring, &connection.in_flight, [fd = connection.fd.get(), space](io_uring_sqe* entry) {
    io_uring_prep_recv(entry, fd, space.data(), space.size(), 0);
    // A request seldom waits already: the kernel arms its poll at once
    // instead of trying the receive first and failing.
    entry->ioprio |= IORING_RECVSEND_POLL_FIRST;
  });
}

auto send(uring::Ring& ring, UringConnection& connection, std::string_view bytes) {
  return uring::Operation(ring, &connection.in_flight, [fd = connection.fd.get(), bytes](io_uring_sqe* entry) {
    io_uring_prep_send(entry, fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  });
}

// Until input arrives on the connection or `wait` has passed.
auto readable_within(uring::Ring& ring, UringConnection& connection, Clock::duration wait) {
  return uring::Operation(ring, &connection.in_flight,
                          [&ring, fd = connection.fd.get(), when = timespec_of(wait)](io_uring_sqe* entry) mutable {
                            io_uring_prep_poll_add(entry, fd, POLLIN);
                            entry->flags |= IOSQE_IO_LINK;
                            io_uring_prep_link_timeout(ring.sqe(nullptr), &when, 0);
                          });
}

}  // namespace

// A connection one loop accepted and another serves, on its way in that
// loop's mailbox.
class Arrival final : public uring::Completion {
 public:
  explicit Arrival(UringEngine::Loop& to) : to_(to) {}
  void hold(Fd fd) { fd_ = std::move(fd); }
  Fd take() { return std::move(fd_); }
  void complete(int /*result*/, unsigned /*flags*/) override {
    const std::unique_ptr<Arrival> self(this);
    to_.welcome(std::move(fd_));
  }

 private:
  UringEngine::Loop& to_;
  Fd fd_;
};

UringEngine::Loop::Loop(UringEngine& engine)
    : engine_(engine), context_(engine.context_), spares_(context_.handler, *context_.rules.stop) {}

UringEngine::Loop::~Loop() = default;

void UringEngine::Loop::run() {
  ring_.emplace(kRingEntries, mailbox);  // here: this thread is the ring's one submitter
  clock.start();
  accept();
  keep_sweeping();
  // A connection handed over meanwhile keeps the loop going.
  while (!finished() || !mailbox.close()) ring_->run_once();
  clock.stop();
  ring_.reset();
}

void UringEngine::Loop::Timer::arm(uring::Ring& ring, Clock::duration after) {
  when_ = timespec_of(after);
  io_uring_prep_timeout(ring.sqe(this), &when_, 0, 0);
}

void UringEngine::Loop::accept() {
  accepting_ = !stopping_;
  if (accepting_)
    io_uring_prep_multishot_accept(ring_->sqe(&acceptor_), context_.listener, nullptr, nullptr, SOCK_CLOEXEC);
}

void UringEngine::Loop::accepted(int result, unsigned flags) {
  if (result >= 0) {
    accept_policy_.succeeded();
    hand_over(Fd(result));
    if ((flags & IORING_CQE_F_MORE) == 0) accept();
    return;
  }
  if (context_.rules.stop->stopping()) {  // the listener is shut down: accepting ends
    accepting_ = (flags & IORING_CQE_F_MORE) != 0;
    return;
  }
  switch (accept_policy_.failed(-result)) {
    case AcceptPolicy::Then::next: break;
    case AcceptPolicy::Then::pause:
      if ((flags & IORING_CQE_F_MORE) == 0) return accept_pause_.arm(*ring_, accept_policy_.pause());
      break;
    case AcceptPolicy::Then::broken:
      accepting_ = false;
      return engine_.fail(std::make_exception_ptr(std::system_error(-result, std::generic_category(), "accept")));
  }
  if ((flags & IORING_CQE_F_MORE) == 0) accept();
}

void UringEngine::Loop::stopping() {
  stopping_ = true;
  if (accepting_) ring_->cancel(&acceptor_);
  for (UringConnection& connection : connections_) {
    if (connection.waiting == Waiting::receive && connection.in_flight != nullptr) ring_->cancel(connection.in_flight);
  }
}

void UringEngine::Loop::sweep() {
  sweeping_ = false;
  const Clock::time_point now = Clock::now();
  for (UringConnection& connection : connections_) {
    if (connection.waiting == Waiting::nothing || connection.expired || connection.in_flight == nullptr) continue;
    const Clock::time_point deadline =
        connection.waiting == Waiting::send ? std::min(connection.deadline, send_limit_) : connection.deadline;
    if (now < deadline) continue;
    connection.expired = true;
    ring_->cancel(connection.in_flight);
  }
  keep_sweeping();
}

void UringEngine::Loop::keep_sweeping() {
  if (sweeping_ || finished()) return;
  sweeping_ = true;
  const IdleRule idle = context_.rules.idle;
  const Clock::duration tick =
      idle.on() ? std::clamp<Clock::duration>(idle.timeout / 20, kSweepMin, kSweepMax) : kSweepMax;
  sweeper_.arm(*ring_, stopping_ ? kSweepStopping : tick);
}

void UringEngine::Loop::hand_over(Fd fd) {
  Loop& to = *engine_.loops_[engine_.next_loop()];
  std::unique_ptr<Arrival> arrival(&to != this ? new (std::nothrow) Arrival(to) : nullptr);
  if (arrival) {
    arrival->hold(std::move(fd));
    if (to.mailbox.post(arrival.get())) return (void)arrival.release();  // its completion deletes it
    fd = arrival->take();
  }
  welcome(std::move(fd));  // this loop's turn, no memory to hand it over, or that loop has ended
}

void UringEngine::Loop::welcome(Fd fd) {
  Endpoint peer;
  peer.length = sizeof peer.storage;
  if (::getpeername(fd.get(), reinterpret_cast<sockaddr*>(&peer.storage), &peer.length) != 0) return;  // gone already
  if (!context_.book.admit(fd.get(), peer)) return;
  const int descriptor = fd.get();
  try {
    // The printable name only, not the address, lives as long as the
    // connection: an idle connection should cost little memory.
    serve(connections_.emplace(connections_.end(), std::move(fd), peer.to_string(), context_, replies, spares_));
  } catch (const std::bad_alloc&) {
    context_.book.turn_away(descriptor, peer, "out of memory");
  }
  keep_sweeping();  // a connection handed over after the loop had ended its sweeps
}

uring::Detached UringEngine::Loop::serve(UringConnections::iterator connection) {
  UringConnection& c = *connection;
  ConnectionDriver& driver = c.driver;
  uring::Ring& ring = *ring_;
  const auto wait_for = [&c](Waiting what, Clock::time_point until) {
    c.waiting = what;
    c.deadline = until;
    c.expired = false;
  };
  ConnectionResult result{.end = End::failed};
  try {
    for (bool done = false; !done;) {
      const ConnectionDriver::Step step = driver.next();
      switch (step.what) {
        case Do::receive: {
          wait_for(Waiting::receive, step.deadline);
          const int n = co_await receive(ring, c, step.space);
          c.waiting = Waiting::nothing;
          if (n >= 0) {
            const auto got = static_cast<std::size_t>(n);
            driver.received(got, got == step.space.size() && bytes_waiting(c.fd.get()) > 0, Clock::now());
          } else {  // cancelled by the sweeper (idle) or a stop, or failed
            driver.receive_cut(n != -ECANCELED ? Cut::error : c.expired ? Cut::deadline : Cut::stopping, -n);
          }
          break;
        }
        case Do::send: {
          wait_for(Waiting::send, step.deadline);
          int n = 0;
          for (std::string_view rest = step.bytes; !rest.empty() && n >= 0; rest.remove_prefix(std::max(n, 0)))
            n = co_await send(ring, c, rest);
          c.waiting = Waiting::nothing;
          if (n >= 0)
            driver.sent();
          else  // cancelled by the sweeper: the client stopped reading
            driver.send_cut(n == -ECANCELED && c.expired ? Cut::deadline : Cut::error, -n);
          break;
        }
        case Do::compute:
          driver.computed(
              co_await Computation(mailbox, engine_.workers_, at_workers, *step.session, c.fd.get(), context_.rules));
          break;
        case Do::close: {
          GracefulClose close(c.fd.get(), step.limits.until, step.limits.max_bytes);
          while (const std::optional<Clock::duration> wait = close.discard()) co_await readable_within(ring, c, *wait);
          break;
        }
        case Do::done: done = true; break;
      }
    }
    result = driver.result();
  } catch (...) {
    // Out of memory: the connection ends, and is counted out, all the same.
  }
  end(connection, result);
}

void UringEngine::Loop::end(UringConnections::iterator connection, const ConnectionResult& result) noexcept {
  const std::string name = std::move(connection->name);
  connections_.erase(connection);  // closes the socket
  context_.book.ended(name, result);
}

}  // namespace fib
