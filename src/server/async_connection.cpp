// One client's receive / frame / reply / send loop as a coroutine: the
// coroutine mode's counterpart of connection.cpp, over the same Session.
#include "event_loops.h"

#include <sys/socket.h>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <optional>
#include <tuple>
#include <utility>

#include "fib/core/session.h"

namespace fib {

namespace {

using asio::awaitable;
using asio::use_awaitable;
constexpr auto kNoThrow = asio::experimental::as_tuple(use_awaitable);

// Computes the slow request `session` stopped at, on a worker, and sends
// what the socket takes of its answer from there, so that the client has it
// without waiting for the loop to wake up. `sent`: the bytes of output()
// that went out. (The connection's coroutine is suspended meanwhile: nothing
// else touches the session, and replies before this one were sent first.)
awaitable<void> compute(Session& session, int fd, std::size_t& sent) {
  if (session.compute()) {  // a give-up shows in the next advance()
    const std::string_view out = session.output();
    const ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) sent = static_cast<std::size_t>(n);
  }
  co_return;
}

class AsyncConnection {
 public:
  using End = ConnectionResult::End;
  using Next = Session::Next;
  using Waiting = Watch::Waiting;

  AsyncConnection(asio::ip::tcp::socket& socket, EventLoop& loop, const RequestHandler& handler,
                  const ConnectionPolicy& policy, const asio::io_context::executor_type& workers)
      : socket_(socket),
        loop_(loop),
        policy_(policy),
        workers_(workers),
        session_(handler, &policy.stop->abandon_flag()),
        idle_limit_(policy.idle_timeout.count() > 0),
        watch_(loop.watches.emplace(loop.watches.end(), Watch{&socket})) {}
  ~AsyncConnection() { loop_.watches.erase(watch_); }
  AsyncConnection(const AsyncConnection&) = delete;
  AsyncConnection& operator=(const AsyncConnection&) = delete;

  awaitable<ConnectionResult> run() {
    for (;;) {
      // Requests still on their way are not read once the server stops: the
      // stopping line tells the client they were not answered.
      if (policy_.stop->stopping()) co_return co_await say_goodbye(End::stopped);
      const std::span<char> space = session_.free_space();
      wait_for(Waiting::receive, idle_limit_ ? last_valid_ + policy_.idle_timeout : Clock::time_point::max());
      // Asio tries the receive at once only when the last one filled its
      // buffer or readiness was reported since: in a closed loop a request
      // costs epoll_wait's share, one recv and one send.
      asio::error_code error;
      std::size_t received = 0;  // not a structured binding: the lambda below captures it
      std::tie(error, received) = co_await socket_.async_read_some(asio::buffer(space.data(), space.size()), kNoThrow);
      const bool expired = waited();
      if (error && error != asio::error::eof) {
        // Cancelled: by the sweeper (idle) or by a stop.
        if (error == asio::error::operation_aborted) co_return co_await say_goodbye(expired ? End::idle : End::stopped);
        end(End::failed, error.value());
        co_return result_;
      }
      // One clock read per receive, for the idle rule and the send that follows.
      const Clock::time_point now = idle_limit_ ? Clock::now() : Clock::time_point{};
      session_.received(received);
      const auto more_waiting = [&] { return received == space.size() && bytes_waiting(socket_.native_handle()) > 0; };
      for (Next next = session_.advance(more_waiting); next != Next::receive; next = session_.advance(more_waiting)) {
        switch (next) {
          case Next::receive: break;
          case Next::send:
            if (!co_await flush(Clock::now())) co_return result_;
            break;
          case Next::compute:
            if (!co_await flush(Clock::now())) co_return result_;
            // On a worker, so that the loop goes on serving; this connection
            // waits, so its answers stay in order.
            co_await asio::co_spawn(workers_, compute(session_, socket_.native_handle(), sent_early_), use_awaitable);
            break;
          case Next::close_gracefully: co_return co_await say_goodbye(End::line_too_long);
          case Next::close:
            end(End::closed);
            co_await flush(now);
            co_return result_;
          case Next::given_up: co_return co_await say_goodbye(End::stopped);
        }
      }
      if (!co_await flush(now)) co_return result_;
      if (idle_limit_ && !keep_idle_clock(now)) co_return co_await say_goodbye(End::idle);
    }
  }

 private:
  void end(End how, int error = 0) {
    result_.end = how;
    result_.error = error;
  }

  // Tells the sweeper what this connection waits for, until when.
  void wait_for(Waiting what, Clock::time_point deadline) {
    watch_->waiting = what;
    watch_->deadline = deadline;
    watch_->expired = false;
  }
  // The wait is over; true when the sweeper cancelled it.
  bool waited() {
    watch_->waiting = Waiting::nothing;
    return watch_->expired;
  }

  // Sends the session's replies: at once when the socket takes them (the
  // common case: no suspension), else as the client reads. A send blocked
  // for the idle timeout since `started` means the client stopped reading.
  // False when the connection ends.
  awaitable<bool> flush(Clock::time_point started) {
    const std::string_view out = session_.output();
    if (out.empty()) co_return true;
    std::size_t sent = std::exchange(sent_early_, 0);
    asio::error_code error;
    if (sent < out.size()) sent += socket_.write_some(asio::buffer(out.data() + sent, out.size() - sent), error);
    if (sent < out.size() && (!error || error == asio::error::would_block)) {
      wait_for(Waiting::send, idle_limit_ ? started + policy_.idle_timeout : Clock::time_point::max());
      const auto [rest_error, rest] =
          co_await asio::async_write(socket_, asio::buffer(out.data() + sent, out.size() - sent), kNoThrow);
      waited();
      error = rest_error;
    }
    if (error) {
      session_.drop_output();
      // Cancelled by the sweeper: the client stopped reading.
      if (error == asio::error::operation_aborted)
        end(End::stalled);
      else
        end(End::failed, error.value());
      co_return false;
    }
    const std::uint64_t before = session_.requests(), errors_before = session_.errors();
    session_.sent();
    result_.requests = session_.requests();
    result_.errors = session_.errors();
    // The loop's thread is the only writer of its totals.
    add(loop_.totals.requests, result_.requests - before);
    add(loop_.totals.errors, result_.errors - errors_before);
    co_return true;
  }
  static void add(std::atomic<std::uint64_t>& total, std::uint64_t n) {
    total.store(total.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  // Sends what is answered, then a last line saying why the connection ends
  // (none for a line too long: its error line is already there), then
  // closes our side gracefully.
  awaitable<ConnectionResult> say_goodbye(End how) {
    end(how);
    if (!session_.room_for_last_line() && !co_await flush(Clock::now())) co_return result_;
    if (how == End::stopped) session_.say_stopping();
    if (how == End::idle) session_.say_idle(policy_.idle_timeout);
    if (!co_await flush(Clock::now())) co_return result_;
    const CloseLimits limits = goodbye_close_limits(how, policy_.stop);
    co_await close_gracefully(limits);
    co_return result_;
  }

  // close_gracefully() of socket.h, waiting on the loop.
  awaitable<void> close_gracefully(CloseLimits limits) {
    using namespace asio::experimental::awaitable_operators;
    GracefulClose close(socket_.native_handle(), limits.until, limits.max_bytes);
    asio::steady_timer timer(socket_.get_executor());
    while (const std::optional<Clock::duration> wait = close.discard()) {
      timer.expires_after(*wait);
      co_await (socket_.async_wait(asio::socket_base::wait_read, kNoThrow) || timer.async_wait(kNoThrow));
    }
  }

  // Idle means no valid request: error replies, and bytes that trickle in
  // without completing a request, do not keep a connection alive (the
  // receive's deadline stays at the last valid request). False once idle.
  bool keep_idle_clock(Clock::time_point now) {
    if (session_.take_valid_request()) last_valid_ = now;
    return now - last_valid_ < policy_.idle_timeout;
  }

  asio::ip::tcp::socket& socket_;
  EventLoop& loop_;
  const ConnectionPolicy& policy_;
  asio::io_context::executor_type workers_;
  Session session_;
  const bool idle_limit_;
  std::list<Watch>::iterator watch_;
  ConnectionResult result_;
  Clock::time_point last_valid_ = Clock::now();
  std::size_t sent_early_ = 0;  // of output(), by the worker that computed it
};

}  // namespace

awaitable<ConnectionResult> serve_connection_async(asio::ip::tcp::socket& socket, EventLoop& loop,
                                                   const RequestHandler& handler, const ConnectionPolicy& policy,
                                                   asio::io_context::executor_type workers) {
  AsyncConnection connection(socket, loop, handler, policy, workers);
  co_return co_await connection.run();
}

}  // namespace fib
