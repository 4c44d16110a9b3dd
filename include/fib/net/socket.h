// The thin socket layer: a move-only descriptor and the few calls the server
// and the load generator make. Failures that end an operation are thrown as
// std::system_error naming the call and the address; per-connection I/O
// returns a status instead, so one client's failure never escapes its thread.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "fib/core/address.h"
#include "fib/core/clock.h"

namespace fib {

// Owns one file descriptor; closes it once. Move-only.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release();
  void reset();

 private:
  int fd_ = -1;
};

// A socket address and its printable form ("127.0.0.1:25000", "[::1]:25000").
struct Endpoint {
  sockaddr_storage storage{};
  socklen_t length = 0;
  std::string to_string() const;
  std::uint16_t port() const;
};

// Binds and listens on the first address `where` resolves to that this host
// has.
// ":port" listens on every interface (IPv6 and IPv4 where the host has IPv6);
// "localhost" is loopback. `family` (AF_INET, AF_INET6) keeps to the
// addresses of that family. Throws std::system_error: "cannot listen on
// 127.0.0.1:25000: bind: Address already in use", or std::runtime_error when
// the host name does not resolve.
Fd listen_tcp(const HostPort& where, Endpoint* bound, int family = AF_UNSPEC);

// Connects to the first address `where` resolves to that answers (an empty
// host is loopback), within `timeout` (0: as long as the kernel tries), and
// gives up early once *cancel turns true. The socket returned blocks. Throws
// as listen_tcp does (ETIMEDOUT, ECANCELED included).
Fd connect_tcp(const HostPort& where, std::chrono::milliseconds timeout = {},
               const std::atomic<bool>* cancel = nullptr);

// accept4 with close-on-exec; retries EINTR. Returns an empty Fd and leaves
// errno set when nothing was accepted (EINVAL once the listener is shut
// down).
Fd accept_connection(int listen_fd, Endpoint* peer);

// Receives at most buffer.size() bytes; retries EINTR, unless `interrupt`
// is set and true by then (a signal is how a blocked receive is woken). Returns the count, 0
// at end of stream, -1 on error (errno set; EINTR when interrupted).
std::ptrdiff_t receive_some(int fd, std::span<char> buffer, const std::atomic<bool>* interrupt = nullptr);
// Sends every byte, looping over partial sends and EINTR. Never raises
// SIGPIPE. Returns false when the peer is gone or the send failed. A send
// timeout (SO_SNDTIMEO) restarts with every call, and a call that times out
// after sending part returns that part: so a send that comes back short after
// `give_up_after` fails too, with errno EAGAIN, as a timeout.
bool send_all(int fd, std::string_view data, Clock::time_point give_up_after = Clock::time_point::max());

// Ends our side of the stream (what was sent still goes out, then end of
// stream), then reads and discards what the peer sends until it ends its
// side, or until everything we sent has been acknowledged and nothing
// arrived for a short while, or `until` (a time already past: only what is
// already queued), or `max_bytes`. The close that follows then does not
// reset the connection, which would throw away replies the peer has not yet
// read: closing with unread input sends RST, and so does input arriving
// after the close.
void close_gracefully(int fd, Clock::time_point until, std::size_t max_bytes);

// close_gracefully() apart from the waiting, for callers that wait their own
// way (an event loop): construct (ends our side), then call discard() until
// it returns nullopt, waiting in between at most the time it returns for
// `fd` to become readable. Never blocks.
class GracefulClose {
 public:
  GracefulClose(int fd, Clock::time_point until, std::size_t max_bytes);
  // Reads and discards what is queued; nullopt once the close may proceed.
  std::optional<Clock::duration> discard();

 private:
  int fd_;
  Clock::time_point until_;
  std::size_t max_bytes_;
  std::size_t discarded_ = 0;
  Clock::time_point last_input_;
};

// Out of descriptors or memory: accepting again at once fails again.
bool is_resource_shortage(int error);

// Bytes received and not yet read.
std::size_t bytes_waiting(int fd);
// True once the peer has reset the connection (or it failed otherwise): it
// will never read a reply. A peer that only ended its side (half-close) may
// still read, and is not gone. Never blocks.
bool peer_reset(int fd);
// Bytes sent and not yet acknowledged by the peer.
std::size_t bytes_unacknowledged(int fd);
// Turns off Nagle's algorithm: every reply is a small write the client waits for.
void set_no_delay(int fd);
// Makes a blocked receive on `fd` fail with EAGAIN after `timeout` with no data.
void set_receive_timeout(int fd, std::chrono::milliseconds timeout);
// Makes a blocked send on `fd` fail with EAGAIN after `timeout` without progress.
void set_send_timeout(int fd, std::chrono::milliseconds timeout);

// The soft limit on open descriptors, after raising it to the hard limit.
std::uint64_t raise_descriptor_limit();
// The soft limit on open descriptors.
std::uint64_t descriptor_limit();

}  // namespace fib
