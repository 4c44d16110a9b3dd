#include "connection_book.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include <spdlog/spdlog.h>

#include "fib/core/plural.h"
#include "fib/core/request_handler.h"
#include "fib/net/socket.h"
#include "fib/server/stats.h"

namespace fib {

namespace {

// What the client already sent and a refusal reads before closing, at most.
constexpr std::size_t kRefusalDiscardBytes = std::size_t{64} * 1024;

// Sends `message` and ends our side without blocking the accepting thread.
// What the client already sent is read first (up to a bound): left unread,
// it would turn the close into a reset that can overtake the message.
void hang_up(int fd, std::string_view message) noexcept {
  ::send(fd, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  close_gracefully(fd, Clock::now(), kRefusalDiscardBytes);
}

// Logging allocates, and memory may be what ran out: a line that cannot be
// had is left out, and the connection goes on all the same.
template <typename... Args>
void log(spdlog::level::level_enum level, fmt::format_string<Args...> format, Args&&... args) noexcept {
  try {
    spdlog::log(level, format, std::forward<Args>(args)...);
  } catch (...) {
  }
}

}  // namespace

AcceptPolicy::Then AcceptPolicy::failed(int error) {
  if (is_resource_shortage(error)) {
    if (pause_.count() == 0)
      log(spdlog::level::warn, "accept: {}; pausing accepts until resources free up", strerror(error));
    pause_ = std::clamp(pause_ * 2, kPauseFirst, kPauseMax);
    return Then::pause;
  }
  if (error == EBADF || error == ENOTSOCK || error == EINVAL || error == EFAULT || error == ECANCELED)
    return Then::broken;
  return Then::next;  // a client gone before it was taken (ECONNABORTED and the like)
}

Ticket& Ticket::operator=(Ticket&& other) noexcept {
  close({.end = End::failed});
  book_ = std::exchange(other.book_, nullptr);
  name_ = std::move(other.name_);
  return *this;
}

void Ticket::close(const ConnectionResult& result) noexcept {
  if (book_ != nullptr) std::exchange(book_, nullptr)->ended(name_, result);
}

void Ticket::turn_away(int fd, Refusal reason, std::string_view detail) noexcept {
  if (book_ != nullptr) std::exchange(book_, nullptr)->turned_away(fd, name_, reason, detail);
}

Ticket ConnectionBook::admit(int fd, const Endpoint& peer) noexcept {
  accepted_.fetch_add(1, std::memory_order_relaxed);
  if (open_.fetch_add(1, std::memory_order_seq_cst) < max_connections_) {
    std::string name;
    try {
      // The printable name only, not the address, lives as long as the
      // connection: an idle connection should cost little memory.
      name = peer.to_string();
    } catch (...) {  // out of memory: the log lines go without it
    }
    log(spdlog::level::info, "connection from {} opened", name);
    return {*this, std::move(name)};
  }
  open_.fetch_sub(1, std::memory_order_seq_cst);
  refused(Refusal::over_limit);
  char message[160];
  std::size_t length = 0;
  try {
    length = std::min(fmt::format_to_n(message, sizeof message,
                                       "error: server busy: {} connection{} open, the most it serves at once; try "
                                       "again later\n",
                                       max_connections_, plural_s(max_connections_))
                          .size,
                      sizeof message);
  } catch (...) {
  }
  log(spdlog::level::info, "connection from {} refused: {} connection{} open (--max-connections)", peer.to_string(),
      max_connections_, plural_s(max_connections_));
  hang_up(fd, {message, length});
  return {};
}

void ConnectionBook::turned_away(int fd, std::string_view peer, Refusal reason, std::string_view detail) noexcept {
  const std::uint64_t count = refused(reason);
  if (reason == Refusal::no_thread) {
    log(spdlog::level::warn, "cannot start a thread for {}: {} ({} so far)", peer, detail, count);
    hang_up(fd, "error: server cannot start a thread for this connection; try again later\n");
  } else {
    log(spdlog::level::warn, "no memory to serve {} ({} so far)", peer, count);
    hang_up(fd, "error: server out of memory for this connection; try again later\n");
  }
  open_.fetch_sub(1, std::memory_order_seq_cst);
  if (stopping_.load(std::memory_order_seq_cst)) {
    const std::lock_guard lock(mutex_);
    changed_.notify_all();
  }
}

void ConnectionBook::ended(std::string_view peer, const ConnectionResult& result) noexcept {
  try {
    const std::string how = result.end == End::failed && result.error != 0
                                ? std::generic_category().message(result.error)
                                : std::string(to_string(result.end));
    spdlog::info("connection from {} closed after {} request{}: {}", peer, result.replies, plural_s(result.replies),
                 how);
  } catch (...) {  // out of memory for the line: the connection ended all the same
  }
  ended_[static_cast<std::size_t>(result.end)].fetch_add(1, std::memory_order_relaxed);
  open_.fetch_sub(1, std::memory_order_seq_cst);
  // Only a stop waits for connections to end.
  if (stopping_.load(std::memory_order_seq_cst)) {
    const std::lock_guard lock(mutex_);
    changed_.notify_all();
  }
}

void ConnectionBook::tell_backlog_stopping(int listener) noexcept {
  const int flags = ::fcntl(listener, F_GETFL);
  if (flags < 0 || ::fcntl(listener, F_SETFL, flags | O_NONBLOCK) != 0) return;
  for (;;) {
    Endpoint peer;
    const Fd fd = accept_connection(listener, &peer);
    if (!fd) return;
    accepted_.fetch_add(1, std::memory_order_relaxed);
    hang_up(fd.get(), kStoppingReply);
    ended_[static_cast<std::size_t>(End::stopped)].fetch_add(1, std::memory_order_relaxed);
  }
}

bool ConnectionBook::pause(std::chrono::milliseconds pause) {
  std::unique_lock lock(mutex_);
  return !changed_.wait_for(lock, pause, [this] { return stopping_.load(std::memory_order_relaxed); });
}

void ConnectionBook::stopping() {
  {
    const std::lock_guard lock(mutex_);
    stopping_.store(true, std::memory_order_seq_cst);
  }
  changed_.notify_all();
}

bool ConnectionBook::wait_until_all_ended(Clock::time_point until) {
  std::unique_lock lock(mutex_);
  return changed_.wait_until(lock, until, [this] { return open_.load(std::memory_order_seq_cst) == 0; });
}

void ConnectionBook::add_to(ServerStats& stats) const {
  stats.open += open_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < kConnectionEnds; ++i) stats.ended[i] += ended_[i].load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < kRefusalKinds; ++i) stats.refused[i] += refused_[i].load(std::memory_order_acquire);
  // Read last, so that accepted is never less than the connections open,
  // refused and ended: each was counted as accepted first.
  stats.accepted += accepted_.load(std::memory_order_acquire);
}

}  // namespace fib
