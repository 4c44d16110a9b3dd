// One client's receive / frame / reply / send loop as a coroutine: the
// coroutine mode's counterpart of connection.cpp, over the same Session.
#include "event_loops.h"

#include <sys/socket.h>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <tuple>
#include <utility>

#include "fib/core/session.h"

namespace fib {

namespace {

using asio::awaitable;
using asio::use_awaitable;

// Computes the slow request `session` stopped at, on a worker (see
// compute_slow()), and sends what the socket takes of its answer from
// there, so that the client has it without waiting for the loop to wake up.
// `sent`: the bytes of output() that went out. (The connection's coroutine is
// suspended meanwhile: nothing else touches the session, and replies before
// this one were sent first.) `reset`: the client has gone.
awaitable<void> compute(Session& session, int fd, const ConnectionPolicy& policy, std::size_t& sent, bool& reset) {
  const Computed computed = compute_slow(session, fd, policy);
  reset = computed == Computed::client_gone;
  if (computed == Computed::answered) {  // a give-up shows in the next advance()
    const std::string_view out = session.output();
    const ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) sent = static_cast<std::size_t>(n);
  }
  co_return;
}

// Counts a slow request handed to the workers until it is back, on the
// loop's thread.
class AtWorkers {
 public:
  explicit AtWorkers(EventLoop& loop) : loop_(loop) { add(loop_.at_workers, 1); }
  ~AtWorkers() { add(loop_.at_workers, -1); }
  AtWorkers(const AtWorkers&) = delete;
  AtWorkers& operator=(const AtWorkers&) = delete;

 private:
  EventLoop& loop_;
};

// What a connection at rest reads into: a request or two.
constexpr std::size_t kArrivedBytes = 32;

class AsyncConnection {
 public:
  using End = ConnectionResult::End;
  using Next = Session::Next;
  using Waiting = LoopConnection::Waiting;

  AsyncConnection(LoopConnection& connection, EventLoop& loop, const RequestHandler& handler,
                  const ConnectionPolicy& policy, const asio::io_context::executor_type& workers)
      : connection_(connection),
        socket_(connection.socket),
        loop_(loop),
        policy_(policy),
        workers_(workers),
        handler_(handler),
        idle_limit_(policy.idle_timeout.count() > 0),
        result_(connection.result) {}
  ~AsyncConnection() { rest(); }
  AsyncConnection(const AsyncConnection&) = delete;
  AsyncConnection& operator=(const AsyncConnection&) = delete;

  // nullopt: parked.
  awaitable<std::optional<ConnectionResult>> run() {
    for (;;) {
      // Requests still on their way are not read once the server stops: the
      // stopping line tells the client they were not answered.
      if (policy_.stop->stopping()) co_return co_await say_goodbye(End::stopped);
      if (connection_.expired) co_return co_await say_goodbye(End::idle);  // while parked
      // With nothing pending the connection holds no session: what arrives
      // is read into a few bytes of its own, then handed to a session.
      const bool resting = !session_;
      const std::span<char> space = resting ? std::span<char>(arrived_) : session_->free_space();
      wait_for(Waiting::receive,
               idle_limit_ ? connection_.last_valid + policy_.idle_timeout : Clock::time_point::max());
      // Asio tries the receive at once only when the last one filled its
      // buffer or readiness was reported since: in a closed loop a request
      // costs epoll_wait's share, one recv and one send.
      asio::error_code error;
      std::size_t received = 0;  // not a structured binding: the lambda below captures it
      std::tie(error, received) = co_await socket_.async_read_some(asio::buffer(space.data(), space.size()), kNoThrow);
      const bool expired = waited();
      if (error && error != asio::error::eof) {
        // Cancelled: by the sweeper (to park, or idle) or by a stop.
        if (error == asio::error::operation_aborted && connection_.park) co_return std::nullopt;
        if (error == asio::error::operation_aborted) co_return co_await say_goodbye(expired ? End::idle : End::stopped);
        end(End::failed, error.value());
        co_return result_;
      }
      // One clock read per receive, for the idle rule, the send that follows
      // and the service time of the requests it completes.
      const Clock::time_point now = Clock::now();
      received_at_ = now;
      Session& session = this->session();
      if (resting && received > 0) std::memcpy(session.free_space().data(), arrived_.data(), received);
      session.received(received);
      const auto more_waiting = [&] { return received == space.size() && bytes_waiting(socket_.native_handle()) > 0; };
      for (Next next = session.advance(more_waiting); next != Next::receive; next = session.advance(more_waiting)) {
        switch (next) {
          case Next::receive: break;
          case Next::send:
            if (!co_await flush(Clock::now())) co_return result_;
            break;
          case Next::compute:
            if (!co_await flush(Clock::now())) co_return result_;
            // On a worker, so that the loop goes on serving; this connection
            // waits, so its answers stay in order.
            {
              const AtWorkers counted(loop_);
              co_await asio::co_spawn(workers_, compute(session, socket_.native_handle(), policy_, sent_early_, reset_),
                                      use_awaitable);
            }
            if (reset_) {
              end(End::failed, ECONNRESET);
              co_return result_;
            }
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
      rest();
    }
  }

 private:
  void end(End how, int error = 0) {
    result_.end = how;
    result_.error = error;
  }

  // The connection's session: one from the loop's spares (or a new one),
  // going on from where the last one rested, when it has none.
  Session& session() {
    if (!session_) {
      if (loop_.spare_sessions.empty()) {
        session_ = std::make_unique<Session>(handler_, &policy_.stop->abandon_flag());
      } else {
        session_ = std::move(loop_.spare_sessions.back());
        loop_.spare_sessions.pop_back();
      }
      session_->resume(connection_.rest);
    }
    return *session_;
  }
  // With nothing pending, the session goes back to the loop's spares: an
  // idle connection costs no buffers.
  void rest() {
    if (!session_ || !session_->at_rest()) return;
    connection_.rest = session_->rest();
    if (loop_.spare_sessions.size() < EventLoop::kSpareSessions) loop_.spare_sessions.push_back(std::move(session_));
    session_.reset();
  }

  // Tells the sweeper what this connection waits for, until when.
  void wait_for(Waiting what, Clock::time_point deadline) {
    connection_.waiting = what;
    connection_.deadline = deadline;
    connection_.expired = connection_.park = false;
    connection_.resting = !session_;
    connection_.rest_sweeps = 0;
  }
  // The wait is over; true when the sweeper cancelled it past its deadline.
  bool waited() {
    connection_.waiting = Waiting::nothing;
    return connection_.expired;
  }

  // Sends the session's replies: at once when the socket takes them (the
  // common case: no suspension), else as the client reads. A send blocked
  // for the idle timeout since `started` means the client stopped reading.
  // False when the connection ends.
  awaitable<bool> flush(Clock::time_point started) {
    Session& session = this->session();
    const std::string_view out = session.output();
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
      session.drop_output();
      // Cancelled by the sweeper: the client stopped reading.
      if (error == asio::error::operation_aborted)
        end(End::stalled);
      else
        end(End::failed, error.value());
      co_return false;
    }
    const ReplyCounts counts = session.sent();
    result_.requests = session.requests();
    result_.errors = session.errors();
    // The loop's thread is the only writer of its totals.
    loop_.totals.count(counts, Clock::now() - received_at_);
    co_return true;
  }

  // Sends what is answered, then a last line saying why the connection ends
  // (none for a line too long: its error line is already there), then
  // closes our side gracefully.
  awaitable<ConnectionResult> say_goodbye(End how) {
    end(how);
    Session& session = this->session();
    if (!session.room_for_last_line() && !co_await flush(Clock::now())) co_return result_;
    if (how == End::stopped) session.say_stopping();
    if (how == End::idle) session.say_idle(policy_.idle_timeout);
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
    // From when the answer went out, as the thread mode's receive timeout
    // starts then: a slow answer does not eat into the next wait.
    if (session().take_valid_request()) connection_.last_valid = Clock::now();
    return now - connection_.last_valid < policy_.idle_timeout;
  }

  LoopConnection& connection_;
  asio::ip::tcp::socket& socket_;
  EventLoop& loop_;
  const ConnectionPolicy& policy_;
  asio::io_context::executor_type workers_;
  const RequestHandler& handler_;
  std::unique_ptr<Session> session_;  // none while the connection is at rest
  std::array<char, kArrivedBytes> arrived_;
  const bool idle_limit_;
  ConnectionResult& result_;
  Clock::time_point received_at_;  // the last receive: what every reply sent since answers arrived then
  std::size_t sent_early_ = 0;     // of output(), by the worker that computed it
  bool reset_ = false;             // the worker found the client gone
};

}  // namespace

awaitable<std::optional<ConnectionResult>> serve_connection_async(LoopConnection& connection, EventLoop& loop,
                                                                  const RequestHandler& handler,
                                                                  const ConnectionPolicy& policy,
                                                                  asio::io_context::executor_type workers) {
  AsyncConnection served(connection, loop, handler, policy, workers);
  co_return co_await served.run();
}

}  // namespace fib
