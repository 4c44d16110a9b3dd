#include "fib/net/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "fib/core/clock.h"

namespace fib {

namespace {

constexpr int kListenBacklog = 4096;

[[noreturn]] void throw_errno(int error, std::string_view what) {
  throw std::system_error(error, std::generic_category(), std::string(what));
}

struct AddrInfoDeleter {
  void operator()(addrinfo* list) const { freeaddrinfo(list); }
};

Endpoint ipv4(in_addr_t address, std::uint16_t port) {
  Endpoint e;
  auto* a = reinterpret_cast<sockaddr_in*>(&e.storage);
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(address);
  a->sin_port = htons(port);
  e.length = sizeof(sockaddr_in);
  return e;
}

Endpoint ipv6(const in6_addr& address, std::uint16_t port) {
  Endpoint e;
  auto* a = reinterpret_cast<sockaddr_in6*>(&e.storage);
  a->sin6_family = AF_INET6;
  a->sin6_addr = address;
  a->sin6_port = htons(port);
  e.length = sizeof(sockaddr_in6);
  return e;
}

// Resolves `where`. An empty host means every interface when listening
// (dual-stack "::" first, then 0.0.0.0 for hosts without IPv6) and loopback
// when connecting. "localhost" is always loopback (RFC 6761), even on a
// minimal system without /etc/hosts.
std::vector<Endpoint> resolve(const HostPort& where, bool passive, std::string_view action, int family) {
  const auto of_family = [family](std::vector<Endpoint> all) {
    std::erase_if(all, [family](const Endpoint& e) { return family != AF_UNSPEC && e.storage.ss_family != family; });
    return all;
  };
  if (where.host.empty() && passive) return of_family({ipv6(in6addr_any, where.port), ipv4(INADDR_ANY, where.port)});
  if (where.host.empty() || where.host == "localhost")
    return of_family({ipv4(INADDR_LOOPBACK, where.port), ipv6(in6addr_loopback, where.port)});
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* raw = nullptr;
  const std::string port = std::to_string(where.port);
  if (const int rc = getaddrinfo(where.host.c_str(), port.c_str(), &hints, &raw); rc != 0) {
    throw std::runtime_error(fmt::format("cannot {} {}: cannot resolve host: {}", action,
                                         format_host_port(where.host, where.port), gai_strerror(rc)));
  }
  const std::unique_ptr<addrinfo, AddrInfoDeleter> list(raw);
  std::vector<Endpoint> endpoints;
  for (const addrinfo* ai = raw; ai != nullptr; ai = ai->ai_next) {
    Endpoint e;
    std::memcpy(&e.storage, ai->ai_addr, ai->ai_addrlen);
    e.length = ai->ai_addrlen;
    endpoints.push_back(e);
  }
  return endpoints;
}

void set_int_option(int fd, int level, int name, int value, std::string_view what) {
  if (setsockopt(fd, level, name, &value, sizeof value) != 0) throw_errno(errno, what);
}

}  // namespace

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = other.release();
  }
  return *this;
}

int Fd::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

void Fd::reset() {
  if (fd_ >= 0) ::close(fd_);  // not retried on EINTR: Linux frees the descriptor anyway
  fd_ = -1;
}

std::string Endpoint::to_string() const {
  char text[INET6_ADDRSTRLEN] = "?";
  if (storage.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&storage);
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
  } else if (storage.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
  }
  return format_host_port(text, port());
}

std::uint16_t Endpoint::port() const {
  if (storage.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  if (storage.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  return 0;
}

Fd listen_tcp(const HostPort& where, Endpoint* bound, int family) {
  const std::string name = format_host_port(where.host, where.port);
  // Only an address this host cannot have moves on to the next candidate
  // ("::" on a host without IPv6); a port in use or a permission error is
  // the answer.
  const auto fail = [&](std::string_view call) {
    throw_errno(errno, fmt::format("cannot listen on {}: {}", name, call));
  };
  const auto unavailable = [] { return errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL; };
  const std::vector<Endpoint> candidates = resolve(where, true, "listen on", family);
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const Endpoint& e = candidates[i];
    const bool last = i + 1 == candidates.size();
    Fd fd(::socket(e.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
      if (unavailable() && !last) continue;
      fail("socket");
    }
    // A restart right after a stop must not wait for old connections' TIME_WAIT.
    set_int_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt SO_REUSEADDR");
    if (e.storage.ss_family == AF_INET6 && where.host.empty()) {
      set_int_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 0, "setsockopt IPV6_V6ONLY");
    }
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&e.storage), e.length) != 0) {
      if (unavailable() && !last) continue;
      fail("bind");
    }
    if (::listen(fd.get(), kListenBacklog) != 0) fail("listen");
    if (bound != nullptr) {
      bound->length = sizeof bound->storage;
      if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound->storage), &bound->length) != 0)
        throw_errno(errno, "getsockname");
    }
    return fd;
  }
  throw_errno(EADDRNOTAVAIL, fmt::format("cannot listen on {}: no address", name));
}

Fd connect_tcp(const HostPort& where, std::chrono::milliseconds timeout, const std::atomic<bool>* cancel) {
  constexpr auto kSlice = std::chrono::milliseconds(100);  // how often `cancel` is looked at
  const std::string name = format_host_port(where.host, where.port);
  const auto deadline = timeout.count() > 0 ? Clock::now() + timeout : Clock::time_point::max();
  int last_error = EADDRNOTAVAIL;
  for (const Endpoint& e : resolve(where, false, "connect to", AF_UNSPEC)) {
    // Non-blocking, so that the wait is bounded and can be cut short.
    Fd fd(::socket(e.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
      last_error = errno;
      continue;
    }
    int error = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&e.storage), e.length) == 0 ? 0 : errno;
    while (error == EINPROGRESS || error == EINTR) {
      if (cancel != nullptr && cancel->load()) {
        error = ECANCELED;
        break;
      }
      const auto now = Clock::now();
      if (now >= deadline) {
        error = ETIMEDOUT;
        break;
      }
      const auto wait = std::min<Clock::duration>(kSlice, deadline - now);
      pollfd p{fd.get(), POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count())) > 0) {
        socklen_t length = sizeof error;
        if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
      }
    }
    if (error == 0) {
      const int flags = ::fcntl(fd.get(), F_GETFL);
      if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) throw_errno(errno, "fcntl");
      return fd;
    }
    last_error = error;
    if (error == ECANCELED || error == ETIMEDOUT) break;
  }
  throw_errno(last_error, fmt::format("cannot connect to {}: connect", name));
}

Fd accept_connection(int listen_fd, Endpoint* peer) {
  for (;;) {
    socklen_t length = sizeof peer->storage;
    const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer->storage), &length, SOCK_CLOEXEC);
    if (fd >= 0) {
      peer->length = length;
      return Fd(fd);
    }
    if (errno != EINTR) return Fd();
  }
}

void set_no_delay(int fd) { set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt TCP_NODELAY"); }

namespace {

void set_timeout(int fd, int option, std::chrono::milliseconds timeout, std::string_view what) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  if (setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv) != 0) throw_errno(errno, what);
}

}  // namespace

void set_receive_timeout(int fd, std::chrono::milliseconds timeout) {
  set_timeout(fd, SO_RCVTIMEO, timeout, "setsockopt SO_RCVTIMEO");
}

void set_send_timeout(int fd, std::chrono::milliseconds timeout) {
  set_timeout(fd, SO_SNDTIMEO, timeout, "setsockopt SO_SNDTIMEO");
}

std::uint64_t raise_descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) throw_errno(errno, "getrlimit RLIMIT_NOFILE");
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) throw_errno(errno, "setrlimit RLIMIT_NOFILE");
  }
  return limit.rlim_cur;
}

std::uint64_t descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) throw_errno(errno, "getrlimit RLIMIT_NOFILE");
  return limit.rlim_cur;
}

}  // namespace fib
