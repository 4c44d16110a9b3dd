#include "uring_loop.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "fib/net/socket.h"

namespace fib {

namespace {

using namespace std::chrono_literals;
using Cut = ConnectionDriver::Cut;
using Do = ConnectionDriver::Do;
using For = Wait::For;

// Entries per ring: a round of every connection's next operation fits in a
// few submissions.
constexpr unsigned kRingEntries = 4096;
// The buffers receives take theirs from, per loop: a request is a few
// bytes, and a buffer goes back as soon as its bytes are copied out, so a
// loop seldom needs many at once. Fewer than a round of connections sending
// at once only makes some receives wait for the next round (ENOBUFS).
constexpr unsigned kReceiveBuffers = 1024;
constexpr unsigned kReceiveBufferBytes = 1024;

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
    workers_.post([this] {
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

// Input into `space`: what the connection received already, or the next
// bytes its multishot receive brings; a count, 0 at the end of the stream,
// or -errno (-ECANCELED: the sweeper or a stop ended the wait).
class Receive {
 public:
  Receive(UringLoop& loop, UringConnection& connection, std::span<char> space)
      : loop_(loop), connection_(connection), space_(space) {}

  bool await_ready() {
    taken_ = connection_.take(space_);
    loop_.arm(connection_);  // the first receive, or input wanted again below kMaxEarlyBytes
    return taken_.has_value();
  }
  void await_suspend(std::coroutine_handle<> handle) {
    connection_.waiter = handle;
    connection_.space = space_;
  }
  int await_resume() const { return taken_ ? *taken_ : connection_.got; }

 private:
  UringLoop& loop_;
  UringConnection& connection_;
  std::span<char> space_;
  std::optional<int> taken_;
};

// Until the connection's multishot receive has ended: before a graceful
// close reads what else arrives, and before the connection goes.
class InputEnded {
 public:
  InputEnded(uring::Ring& ring, std::vector<UringConnection*>& starved, UringConnection& connection)
      : ring_(ring), starved_(starved), connection_(connection) {}

  bool await_ready() {
    UringConnection& c = connection_;
    c.closing = true;
    c.early.clear();
    c.early_from = 0;
    if (c.starved) {
      std::erase(starved_, &c);
      c.starved = false;
    }
    if (c.armed && !c.cancelling) {
      ring_.cancel(&c.input);
      c.cancelling = true;
    }
    return !c.armed;
  }
  void await_suspend(std::coroutine_handle<> handle) { connection_.waiter = handle; }
  void await_resume() const noexcept {}

 private:
  uring::Ring& ring_;
  std::vector<UringConnection*>& starved_;
  UringConnection& connection_;
};

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
  explicit Arrival(UringLoop& to) : to_(to) {}
  void hold(Fd fd) { fd_ = std::move(fd); }
  Fd take() { return std::move(fd_); }
  void complete(int /*result*/, unsigned /*flags*/) override {
    const std::unique_ptr<Arrival> self(this);
    to_.welcome(std::move(fd_));
  }

 private:
  UringLoop& to_;
  Fd fd_;
};

UringLoop::UringLoop(const EngineContext& context, WorkerPool& workers, UringLoops& loops)
    : context_(context), workers_(workers), loops_(loops), spares_(context_.handler, *context_.rules.stop) {}

UringLoop::~UringLoop() = default;

void UringLoop::run() {
  ring_.emplace(kRingEntries, mailbox);  // here: this thread is the ring's one submitter
  buffers_.emplace(*ring_, kReceiveBuffers, kReceiveBufferBytes);
  clock.start();
  accept();
  keep_sweeping();
  // A connection handed over meanwhile keeps the loop going.
  while (!finished() || !mailbox.close()) {
    ring_->run_once();
    feed_starved();
  }
  clock.stop();
  buffers_.reset();
  ring_.reset();
}

void UringLoop::Timer::arm(uring::Ring& ring, Clock::duration after) {
  when_ = timespec_of(after);
  io_uring_prep_timeout(ring.sqe(this), &when_, 0, 0);
}

void UringLoop::accept() {
  accepting_ = !stopping_;
  if (accepting_)
    io_uring_prep_multishot_accept(ring_->sqe(&acceptor_), context_.listener, nullptr, nullptr, SOCK_CLOEXEC);
}

void UringLoop::accepted(int result, unsigned flags) {
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
      return loops_.failed(std::make_exception_ptr(std::system_error(-result, std::generic_category(), "accept")));
  }
  if ((flags & IORING_CQE_F_MORE) == 0) accept();
}

void UringLoop::stopping() {
  stopping_ = true;
  if (accepting_) ring_->cancel(&acceptor_);
  // Whoever waits for input hears of the stop now (a coroutine woken may
  // end its connection, so the next one is found first).
  for (auto next = connections_.begin(); next != connections_.end();) {
    UringConnection& connection = *next++;
    if (connection.wait.what == For::receive && connection.waiter) wake(connection, -ECANCELED);
  }
}

void UringLoop::sweep() {
  sweeping_ = false;
  const auto cut = [this](UringConnection& connection) {
    if (connection.wait.what == For::send) {
      if (connection.in_flight == nullptr) return false;
      ring_->cancel(connection.in_flight);
    } else {
      if (!connection.waiter) return false;
      wake(connection, -ECANCELED);  // its coroutine goes on here, and may end the connection
    }
    return true;
  };
  fib::sweep(connections_, Clock::now(), send_limit_, cut, [](UringConnection&) {});
  keep_sweeping();
}

void UringLoop::keep_sweeping() {
  if (sweeping_ || finished()) return;
  sweeping_ = true;
  sweeper_.arm(*ring_, stopping_ ? kSweepStopping : sweep_tick(context_.rules.idle));
}

void UringLoop::hand_over(Fd fd) {
  UringLoop& to = loops_.next();
  std::unique_ptr<Arrival> arrival(&to != this ? new (std::nothrow) Arrival(to) : nullptr);
  if (arrival) {
    arrival->hold(std::move(fd));
    if (to.mailbox.post(arrival.get())) return (void)arrival.release();  // its completion deletes it
    fd = arrival->take();
  }
  welcome(std::move(fd));  // this loop's turn, no memory to hand it over, or that loop has ended
}

void UringLoop::welcome(Fd fd) {
  Endpoint peer;
  peer.length = sizeof peer.storage;
  if (::getpeername(fd.get(), reinterpret_cast<sockaddr*>(&peer.storage), &peer.length) != 0) return;  // gone already
  Ticket ticket = context_.book.admit(fd.get(), peer);
  if (!ticket) return;
  UringConnections::iterator connection;
  try {
    connection =
        connections_.emplace(connections_.end(), *this, std::move(fd), std::move(ticket), context_, replies, spares_);
  } catch (const std::bad_alloc&) {  // no node: nothing was moved
    ticket.turn_away(fd.get(), Refusal::no_memory);
    return;  // the socket closes
  }
  add(open, 1);
  try {
    serve(connection);
  } catch (const std::bad_alloc&) {
    end(connection, {.end = End::failed});  // no memory for its coroutine: the connection closes
  }
  keep_sweeping();  // a connection handed over after the loop had ended its sweeps
}

void UringConnection::Input::complete(int result, unsigned flags) { loop_.input(connection_, result, flags); }

std::optional<int> UringConnection::take(std::span<char> into) {
  const std::size_t n = std::min(early_bytes(), into.size());
  if (n == 0) return early_bytes() == 0 ? input_end : std::nullopt;
  std::memcpy(into.data(), early.data() + early_from, n);
  early_from += n;
  if (early_from == early.size()) {
    early_from = 0;
    early.clear();
    early.shrink_to_fit();  // an idle connection keeps no buffer
  }
  return static_cast<int>(n);
}

void UringLoop::arm(UringConnection& c) {
  if (c.armed || c.closing || c.starved || c.input_end || c.early_bytes() >= UringConnection::kMaxEarlyBytes) return;
  io_uring_sqe* entry = ring_->sqe(&c.input);
  io_uring_prep_recv_multishot(entry, c.fd.get(), nullptr, 0, 0);
  buffers_->select(entry);
  c.armed = true;
  c.cancelling = false;
}

void UringLoop::input(UringConnection& c, int result, unsigned flags) {
  if ((flags & IORING_CQE_F_MORE) == 0) c.armed = false;
  std::optional<int> taken;
  if ((flags & IORING_CQE_F_BUFFER) != 0) {
    const unsigned id = uring::BufferRing::id(flags);
    if (result > 0 && !c.closing) {
      std::span<const char> bytes(buffers_->data(id), static_cast<std::size_t>(result));
      if (c.waiter && c.early_bytes() == 0) {  // straight to the receive waiting
        const std::size_t n = std::min(bytes.size(), c.space.size());
        std::memcpy(c.space.data(), bytes.data(), n);
        bytes = bytes.subspan(n);
        taken = static_cast<int>(n);
      }
      c.early.append(bytes.data(), bytes.size());
    }
    buffers_->give_back(id);
  }
  if (result == 0) {
    c.input_end = 0;
  } else if (result == -ENOBUFS) {
    add(buffer_shortages, 1);
    if (!c.starved && !c.closing) {
      c.starved = true;
      starved_.push_back(&c);
    }
  } else if (result < 0 && result != -ECANCELED) {  // cancelled: by this loop, which knows why
    c.input_end = result;
  }
  if (c.closing) {  // the connection only waits for its receive to end
    if (!c.armed && c.waiter) std::exchange(c.waiter, {}).resume();
    return;
  }
  if (c.armed && !c.cancelling && c.early_bytes() >= UringConnection::kMaxEarlyBytes) {
    ring_->cancel(&c.input);  // enough is waiting: the rest stays in the socket
    c.cancelling = true;
  }
  arm(c);  // it ended (a full completion queue, say) while input is still wanted
  if (!taken && c.waiter) taken = c.take(c.space);
  if (taken) wake(c, *taken);  // last: the coroutine may end the connection
}

void UringLoop::wake(UringConnection& connection, int result) {
  connection.got = result;
  std::exchange(connection.waiter, {}).resume();
}

void UringLoop::feed_starved() {
  if (starved_.empty()) return;
  for (UringConnection* connection : std::exchange(starved_, {})) {
    connection->starved = false;
    arm(*connection);
  }
}

uring::Detached UringLoop::serve(UringConnections::iterator connection) {
  UringConnection& c = *connection;
  ConnectionDriver& driver = c.driver;
  uring::Ring& ring = *ring_;
  ConnectionResult result{.end = End::failed};
  try {
    for (bool done = false; !done;) {
      const ConnectionDriver::Step step = driver.next();
      switch (step.what) {
        case Do::receive: {
          c.wait.start(For::receive, step.deadline);
          const int n = co_await Receive(*this, c, step.space);
          c.wait.end();
          if (n >= 0) {
            const auto got = static_cast<std::size_t>(n);
            const bool more = c.early_bytes() > 0 || (got == step.space.size() && bytes_waiting(c.fd.get()) > 0);
            driver.received(got, more, Clock::now());
          } else {  // cancelled by the sweeper (idle) or a stop, or failed
            driver.receive_cut(n != -ECANCELED ? Cut::error : c.wait.expired ? Cut::deadline : Cut::stopping, -n);
          }
          break;
        }
        case Do::send: {
          c.wait.start(For::send, step.deadline);
          int n = 0;
          for (std::string_view rest = step.bytes; !rest.empty() && n >= 0; rest.remove_prefix(std::max(n, 0)))
            n = co_await send(ring, c, rest);
          c.wait.end();
          if (n >= 0)
            driver.sent();
          else  // cancelled by the sweeper: the client stopped reading
            driver.send_cut(n == -ECANCELED && c.wait.expired ? Cut::deadline : Cut::error, -n);
          break;
        }
        case Do::compute:
          driver.computed(
              co_await Computation(mailbox, workers_, at_workers, *step.session, c.fd.get(), context_.rules));
          break;
        case Do::close: {
          co_await InputEnded(ring, starved_, c);  // what else arrives is the close's to discard
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
  co_await InputEnded(ring, starved_, c);  // the kernel lets go of the connection first
  end(connection, result);
}

void UringLoop::end(UringConnections::iterator connection, const ConnectionResult& result) noexcept {
  Ticket ticket = std::move(connection->ticket);
  connections_.erase(connection);  // closes the socket
  add(open, -1);
  ticket.close(result);
}

}  // namespace fib
