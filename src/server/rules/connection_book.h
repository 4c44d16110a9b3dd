// The connections an engine accepts, from admission to end, counted and
// logged in one place whatever the engine: admitted or refused (over the
// limit, no thread for it, no memory for it), opened, ended and how; the accept
// policy (what a failed accept means, and the pause when resources run
// out); the clients a stop finds waiting to be accepted; and the wait for
// the last connection to end.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "connection_driver.h"
#include "fib/core/clock.h"
#include "fib/net/socket.h"
#include "fib/server/outcomes.h"

namespace fib {

struct ServerStats;

// What an accepting thread does after accept fails: out of descriptors or
// memory, accept fails again at once, so it pauses, doubling the pause up to
// a limit, as Go's net/http does, instead of spinning.
class AcceptPolicy {
 public:
  enum class Then { next, pause, broken };
  // next: a client gone before it was taken, or a timeout; pause: for
  // pause(), resources are short; broken: the listener itself is.
  Then failed(int error);
  std::chrono::milliseconds pause() const { return pause_; }
  void succeeded() { pause_ = std::chrono::milliseconds{0}; }

  static constexpr std::chrono::milliseconds kPauseFirst{5};
  static constexpr std::chrono::milliseconds kPauseMax{1000};

 private:
  std::chrono::milliseconds pause_{0};
};

class ConnectionBook;

// An admitted connection's place in the book, until it ends: close() with
// how it ended, or turn_away() when it cannot be served after all; a ticket
// that goes with neither (an engine that ran out of memory midway) ends its
// connection as failed. Either way the connection is logged and counted
// once. Empty (false) when the book refused the connection.
class Ticket {
 public:
  Ticket() = default;
  Ticket(Ticket&& other) noexcept : book_(std::exchange(other.book_, nullptr)), name_(std::move(other.name_)) {}
  Ticket& operator=(Ticket&& other) noexcept;
  Ticket(const Ticket&) = delete;
  Ticket& operator=(const Ticket&) = delete;
  ~Ticket() { close({.end = End::failed}); }

  explicit operator bool() const { return book_ != nullptr; }
  // The connection has ended: logged, counted.
  void close(const ConnectionResult& result) noexcept;
  // It cannot be served (`reason`: no thread, or no memory; `detail`:
  // what failed, for the log): tells the client on `fd`, starts a graceful
  // close, counts it refused.
  void turn_away(int fd, Refusal reason, std::string_view detail = {}) noexcept;
  // Closes with what `serve` returns, or as failed when it throws (out of
  // memory): the life of a connection served on the calling thread.
  template <typename Serve>
  void close_after(Serve&& serve) noexcept {
    ConnectionResult result{.end = End::failed};
    try {
      result = serve();
    } catch (...) {
    }
    close(result);
  }

 private:
  friend class ConnectionBook;
  Ticket(ConnectionBook& book, std::string name) : book_(&book), name_(std::move(name)) {}

  ConnectionBook* book_ = nullptr;
  std::string name_;  // the peer's address, for the log
};

class ConnectionBook {
 public:
  // At most `max_connections` served at once.
  void set_limit(unsigned max_connections) { max_connections_ = max_connections; }
  unsigned limit() const { return max_connections_; }

  // Counts a connection accepted on `fd`; logs it opened and returns its
  // ticket when it may be served, else tells the client the server is busy,
  // starts a graceful close of `fd` and returns an empty ticket. The caller
  // closes `fd`.
  Ticket admit(int fd, const Endpoint& peer) noexcept;
  // At a stop: clients that connected but were not accepted yet sent
  // requests nobody read. Each gets the stopping line and a graceful close
  // instead of the reset that shutting the listener down would send it.
  // Never blocks: the listener turns non-blocking.
  void tell_backlog_stopping(int listener) noexcept;

  // Waits `pause`, or less if a stop begins; false once stopping.
  bool pause(std::chrono::milliseconds pause);

  // The stop has begun: pauses end, and wait_until_all_ended() wakes as
  // connections end.
  void stopping();
  // True once no connection is open, false at `until` if some still are.
  bool wait_until_all_ended(Clock::time_point until);

  std::uint64_t open() const { return open_.load(std::memory_order_relaxed); }
  // Adds the connections open, accepted, refused and ended.
  void add_to(ServerStats& stats) const;

 private:
  friend class Ticket;
  void ended(std::string_view peer, const ConnectionResult& result) noexcept;
  void turned_away(int fd, std::string_view peer, Refusal reason, std::string_view detail) noexcept;
  // Counts a refusal; returns how many of its kind there have been.
  std::uint64_t refused(Refusal why) {
    return refused_[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_release) + 1;
  }

  unsigned max_connections_ = 1;
  std::atomic<std::uint64_t> open_{0};
  std::atomic<std::uint64_t> accepted_{0};
  std::array<std::atomic<std::uint64_t>, kRefusalKinds> refused_{};
  std::array<std::atomic<std::uint64_t>, kConnectionEnds> ended_{};
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;  // for the waits below; taken per connection only while stopping
  std::condition_variable changed_;
};

}  // namespace fib
