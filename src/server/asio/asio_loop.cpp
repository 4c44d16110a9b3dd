// One connection's steps on its event loop, as a coroutine.
#include "asio_loop.h"

#include <sys/socket.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <utility>

#include "fib/net/socket.h"

namespace fib {

namespace {

using namespace std::chrono_literals;
using asio::awaitable;
using Cut = ConnectionDriver::Cut;
using Do = ConnectionDriver::Do;
using For = Wait::For;

constexpr auto kNoThrow = asio::experimental::as_tuple(asio::use_awaitable);

// A connection waiting to receive with nothing pending for this many sweeps
// in a row is parked.
constexpr unsigned kSweepsBeforeParking = 2;

// Parked connections have only the idle deadline to check: swept at most
// this often, so that thousands of them cost next to nothing.
constexpr Clock::duration kParkedSweepMax = 1s;

// Counts a slow request handed to the workers until it is back, on the
// loop's thread.
class AtWorkers {
 public:
  explicit AtWorkers(AsioLoop& loop) : loop_(loop) { add(loop_.at_workers, 1); }
  ~AtWorkers() { add(loop_.at_workers, -1); }
  AtWorkers(const AtWorkers&) = delete;
  AtWorkers& operator=(const AtWorkers&) = delete;

 private:
  AsioLoop& loop_;
};

// Computes the slow request `session` stopped at, on a worker (see
// compute_slow()), and sends what the socket takes of its answer from
// there, so that the client has it without waiting for the loop to wake up.
// `sent`: the bytes of output() that went out. (The connection's coroutine is
// suspended meanwhile: nothing else touches the session, and replies before
// this one were sent first.)
awaitable<void> compute(Session& session, int fd, const ConnectionRules& rules, Computed& computed, std::size_t& sent) {
  computed = compute_slow(session, fd, rules);
  if (computed == Computed::answered) {
    const std::string_view out = session.output();
    const ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) sent = static_cast<std::size_t>(n);
  }
  co_return;
}

// close_gracefully() of socket.h, waiting on the loop.
awaitable<void> close_gracefully(asio::ip::tcp::socket& socket, CloseLimits limits) {
  using namespace asio::experimental::awaitable_operators;
  GracefulClose close(socket.native_handle(), limits.until, limits.max_bytes);
  asio::steady_timer timer(socket.get_executor());
  while (const std::optional<Clock::duration> wait = close.discard()) {
    timer.expires_after(*wait);
    co_await (socket.async_wait(asio::socket_base::wait_read, kNoThrow) || timer.async_wait(kNoThrow));
  }
}

// Sends `bytes` past the first `sent`: at once when the socket takes them
// (the common case: no suspension), else as the client reads.
awaitable<void> send(AsioConnection& connection, const ConnectionDriver::Step& step, std::size_t sent) {
  asio::error_code error;
  const std::string_view bytes = step.bytes;
  if (sent < bytes.size())
    sent += connection.socket.write_some(asio::buffer(bytes.data() + sent, bytes.size() - sent), error);
  if (sent < bytes.size() && (!error || error == asio::error::would_block)) {
    connection.wait_for(For::send, step.deadline);
    const auto [rest_error, rest] =
        co_await asio::async_write(connection.socket, asio::buffer(bytes.data() + sent, bytes.size() - sent), kNoThrow);
    connection.wait.end();
    error = rest_error;
  }
  if (!error) {
    connection.driver.sent();
  } else {
    // Cancelled by the sweeper: the client stopped reading.
    connection.driver.send_cut(error == asio::error::operation_aborted ? Cut::deadline : Cut::error, error.value());
  }
}

}  // namespace

AsioConnection::AsioConnection(asio::ip::tcp::socket connected, Ticket admitted, const EngineContext& context,
                               AsioLoop& loop)
    : ticket(std::move(admitted)), socket(std::move(connected)), driver(context.rules, loop.replies, loop.spares) {}

void AsioConnection::wait_for(For what, Clock::time_point until) {
  wait.start(what, until);
  park = false;
  rest_sweeps = 0;
}

namespace {

// Cancels the waits of `connections` past their deadline, and of those to park.
void sweep(AsioLoop& loop, AsioConnections& connections, Clock::time_point now) {
  const auto cancel = [](AsioConnection& connection) {
    asio::error_code ignored;
    connection.socket.cancel(ignored);
  };
  const auto cut = [&cancel](AsioConnection& connection) {
    if (connection.park) return false;  // cancelled already, to be parked
    cancel(connection);
    return true;
  };
  const auto at_rest = [&cancel](AsioConnection& connection) {
    if (!connection.park && connection.wait.what == For::receive && connection.driver.at_rest() &&
        ++connection.rest_sweeps >= kSweepsBeforeParking) {
      connection.park = true;
      cancel(connection);
    }
  };
  fib::sweep(connections, now, loop.send_limit, cut, at_rest);
}

}  // namespace

bool Arrivals::expect() {
  const std::lock_guard lock(mutex_);
  if (closed_) return false;
  ++posted_;
  return true;
}

void Arrivals::landed() {
  const std::lock_guard lock(mutex_);
  --posted_;
}

bool Arrivals::close() {
  const std::lock_guard lock(mutex_);
  closed_ = posted_ == 0;
  return closed_;
}

awaitable<bool> serve_on_loop(AsioConnection& connection, AsioLoop& loop, const ConnectionRules& rules,
                              WorkerPool& workers) {
  ConnectionDriver& driver = connection.driver;
  const int fd = connection.socket.native_handle();
  std::size_t sent_early = 0;  // of the next send's bytes, by the worker that computed them
  for (;;) {
    const ConnectionDriver::Step step = driver.next();
    switch (step.what) {
      case Do::receive: {
        if (connection.wait.expired) {  // the sweeper ended a parked wait past its deadline
          driver.receive_cut(Cut::deadline);
          break;
        }
        connection.wait_for(For::receive, step.deadline);
        // Asio tries the receive at once only when the last one filled its
        // buffer or readiness was reported since: in a closed loop a request
        // costs epoll_wait's share, one recv and one send.
        const auto [error, n] =
            co_await connection.socket.async_read_some(asio::buffer(step.space.data(), step.space.size()), kNoThrow);
        const bool expired = connection.wait.end();
        if (!error || error == asio::error::eof) {
          driver.received(n, n == step.space.size() && bytes_waiting(fd) > 0, Clock::now());
        } else if (error != asio::error::operation_aborted) {
          driver.receive_cut(Cut::error, error.value());
        } else if (connection.park) {
          co_return false;
        } else {  // cancelled by the sweeper (idle) or by a stop
          driver.receive_cut(expired ? Cut::deadline : Cut::stopping);
        }
        break;
      }
      case Do::send: co_await send(connection, step, std::exchange(sent_early, 0)); break;
      case Do::compute: {
        // On a worker, so that the loop goes on serving; this connection
        // waits, so its answers stay in order.
        const AtWorkers counted(loop);
        Computed computed = Computed::given_up;
        co_await asio::co_spawn(workers.context(), compute(*step.session, fd, rules, computed, sent_early),
                                asio::use_awaitable);
        driver.computed(computed);
        break;
      }
      case Do::close: co_await close_gracefully(connection.socket, step.limits); break;
      case Do::done: co_return true;
    }
  }
}

awaitable<void> sweeper(AsioLoop& loop, const ConnectionRules& rules) {
  asio::steady_timer timer(loop.io);
  loop.sweep_timer = &timer;
  const Clock::duration tick = sweep_tick(rules.idle), parked_tick = sweep_tick(rules.idle, kParkedSweepMax);
  Clock::time_point next_parked_sweep = Clock::now() + parked_tick;
  for (;;) {
    const bool stopping = rules.stop->stopping();
    if (stopping && loop.connections.empty() && loop.parked.empty() && !loop.acceptor->is_open() &&
        loop.arrivals.close())
      break;
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
