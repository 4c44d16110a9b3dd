// What a connection does on its socket: receive, send, close gracefully,
// and look at what is queued.
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <system_error>

#include "fib/core/clock.h"
#include "fib/net/socket.h"

namespace fib {

std::ptrdiff_t receive_some(int fd, std::span<char> buffer, const std::atomic<bool>* interrupt) {
  for (;;) {
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n >= 0 || errno != EINTR) return n;
    if (interrupt != nullptr && interrupt->load(std::memory_order_relaxed)) return -1;
  }
}

bool send_all(int fd, std::string_view data, Clock::time_point give_up_after) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
    // Short: the buffer was full, so this is no hot path to read the clock on.
    if (!data.empty() && Clock::now() >= give_up_after) {
      errno = EAGAIN;
      return false;
    }
  }
  return true;
}

GracefulClose::GracefulClose(int fd, Clock::time_point until, std::size_t max_bytes)
    : fd_(fd), until_(until), max_bytes_(max_bytes), last_input_(Clock::now()) {
  ::shutdown(fd, SHUT_WR);
}

std::optional<Clock::duration> GracefulClose::discard() {
  // How long the peer must have sent nothing before we take it to be done.
  constexpr std::chrono::milliseconds kQuiet{20};
  char scratch[4096];
  while (discarded_ < max_bytes_) {
    // What is already queued is read at once; only then is there any waiting.
    const ssize_t n = ::recv(fd_, scratch, sizeof scratch, MSG_DONTWAIT);
    if (n > 0) {
      discarded_ += static_cast<std::size_t>(n);
      last_input_ = Clock::now();
      if (last_input_ >= until_) return std::nullopt;  // a client sending without pause does not hold us past `until`
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return std::nullopt;
    const Clock::time_point now = Clock::now();
    const bool quiet = now - last_input_ >= kQuiet;
    if ((quiet && bytes_unacknowledged(fd_) == 0) || now >= until_) return std::nullopt;
    return std::min<Clock::duration>({until_ - now, quiet ? Clock::duration(kQuiet) : kQuiet - (now - last_input_)});
  }
  return std::nullopt;
}

void close_gracefully(int fd, Clock::time_point until, std::size_t max_bytes) {
  GracefulClose close(fd, until, max_bytes);
  while (const std::optional<Clock::duration> wait = close.discard()) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(*wait).count())) < 0 &&
        errno != EINTR)
      return;
  }
}

bool is_resource_shortage(int error) {
  return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
}

std::size_t bytes_waiting(int fd) {
  int count = 0;
  if (::ioctl(fd, FIONREAD, &count) != 0) return 0;
  return static_cast<std::size_t>(count);
}

bool peer_reset(int fd) {
  pollfd connection{fd, 0, 0};  // POLLERR and POLLHUP are always reported
  return ::poll(&connection, 1, 0) > 0 && (connection.revents & (POLLERR | POLLHUP)) != 0;
}

std::size_t bytes_unacknowledged(int fd) {
  int count = 0;
  if (::ioctl(fd, SIOCOUTQ, &count) != 0) return 0;
  return static_cast<std::size_t>(count);
}

}  // namespace fib
