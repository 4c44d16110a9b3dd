#include "blocking.h"

#include <cerrno>
#include <chrono>
#include <new>
#include <system_error>
#include <utility>

#include "rules/compute_gate.h"
#include "rules/priority.h"

namespace fib {

void accept_blocking(const EngineContext& context, const std::function<void(Fd, Ticket)>& serve) {
  AcceptPolicy policy;
  for (;;) {
    try {
      // A blocking accept: one system call per connection. A stop shuts the
      // listener down, which makes it return.
      Endpoint peer;
      Fd fd = accept_connection(context.listener, &peer);
      if (!fd) {
        const int error = errno;
        if (context.rules.stop->stopping()) return;
        switch (policy.failed(error)) {
          case AcceptPolicy::Then::next: continue;
          case AcceptPolicy::Then::pause:
            if (!context.book.pause(policy.pause())) return;
            continue;
          case AcceptPolicy::Then::broken: throw std::system_error(error, std::generic_category(), "accept");
        }
      }
      policy.succeeded();
      if (Ticket ticket = context.book.admit(fd.get(), peer)) serve(std::move(fd), std::move(ticket));
    } catch (const std::bad_alloc&) {
      // Out of memory: whatever was being accepted is closed (RAII); wait
      // for memory to free up, as for descriptors.
      policy.failed(ENOMEM);
      if (!context.book.pause(policy.pause())) return;
    }
  }
}

void give_sends_grace(int fd) noexcept {
  try {
    set_send_timeout(fd, StopState::kGrace);
  } catch (const std::system_error&) {  // the connection is going anyway
  }
}

namespace {

using Cut = ConnectionDriver::Cut;

// One connection's blocking steps.
class BlockingConnection {
 public:
  BlockingConnection(int fd, const ConnectionRules& rules) : fd_(fd), rules_(rules) {
    if (rules_.idle.on()) set_send_timeout(fd_, rules_.idle.timeout);
  }

  // The receive timeout is what is left until the step's deadline: set only
  // when that changes, which a connection that keeps sending valid requests
  // never makes it do.
  void receive(const ConnectionDriver::Step& step, ConnectionDriver& driver) {
    if (step.deadline != Clock::time_point::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(step.deadline - Clock::now());
      if (left.count() <= 0) return driver.receive_cut(Cut::deadline);
      if (left != armed_) {
        set_receive_timeout(fd_, left);
        armed_ = left;
      }
    }
    const std::ptrdiff_t n = receive_some(fd_, step.space, &rules_.stop->stopping_flag());
    if (n >= 0) {
      const auto received = static_cast<std::size_t>(n);
      return driver.received(received, received == step.space.size() && bytes_waiting(fd_) > 0, Clock::now());
    }
    if (errno == EINTR) return driver.receive_cut(Cut::stopping);  // woken by the stop
    if (errno == EAGAIN || errno == EWOULDBLOCK) return driver.receive_cut(Cut::deadline);
    driver.receive_cut(Cut::error, errno);
  }

  void send(const ConnectionDriver::Step& step, ConnectionDriver& driver) {
    if (send_all(fd_, step.bytes, step.deadline)) return driver.sent();
    // The send timeout, or the deadline past a short send: the client stopped reading.
    driver.send_cut(errno == EAGAIN || errno == EWOULDBLOCK ? Cut::deadline : Cut::error, errno);
  }

  // On this connection's own thread, at the lower priority of slow requests.
  void compute(const ConnectionDriver::Step& step, ConnectionDriver& driver) {
    lower_priority();
    const Computed computed = compute_slow(*step.session, fd_, rules_);
    restore_priority();
    driver.computed(computed);
  }

 private:
  const int fd_;
  const ConnectionRules& rules_;
  std::chrono::milliseconds armed_{0};  // the receive timeout set; 0: none
};

}  // namespace

ConnectionResult serve_blocking(int fd, const EngineContext& context, ConnectionCounters& counters) {
  using Do = ConnectionDriver::Do;
  Session session(context.handler, &context.rules.stop->abandon_flag());  // on this thread's stack
  ConnectionDriver driver(context.rules, counters, session);
  BlockingConnection connection(fd, context.rules);
  for (;;) {
    const ConnectionDriver::Step step = driver.next();
    switch (step.what) {
      case Do::receive: connection.receive(step, driver); break;
      case Do::send: connection.send(step, driver); break;
      case Do::compute: connection.compute(step, driver); break;
      case Do::close: close_gracefully(fd, step.limits.until, step.limits.max_bytes); break;
      case Do::done: return driver.result();
    }
  }
}

}  // namespace fib
