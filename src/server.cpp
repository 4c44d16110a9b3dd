#include "fib_server/server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <system_error>

#include <fmt/format.h>

#include <spdlog/spdlog.h>

#include "fib_server/address.h"
#include "fib_server/connection.h"

namespace fib {

namespace {

// Out of descriptors or memory, accept fails again at once: wait, doubling
// the pause up to a limit, as Go's net/http does, instead of spinning.
constexpr std::chrono::milliseconds kAcceptBackoffFirst{5};
constexpr std::chrono::milliseconds kAcceptBackoffMax{1000};

// Descriptors kept back from connections: the listener, the wake-up
// eventfd, standard streams, log files.
constexpr std::uint64_t kReservedDescriptors = 16;

bool is_resource_shortage(int error) {
  return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
}

std::string_view to_string(Mode mode) { return mode == Mode::thread ? "thread" : "sequential"; }

}  // namespace

unsigned default_max_connections() {
  const std::uint64_t limit = descriptor_limit();
  return static_cast<unsigned>(std::clamp<std::uint64_t>(limit > kReservedDescriptors ? limit - kReservedDescriptors : 1,
                                                          1, std::numeric_limits<unsigned>::max()));
}

Server::Server(const ServerConfig& config)
    : config_(config),
      handler_(config.algorithm, config.max_n != 0 ? config.max_n : default_max_n(config.algorithm)),
      max_connections_(config.max_connections != 0 ? config.max_connections : default_max_connections()) {
  listener_ = listen_tcp(parse_host_port(config.address), &local_);
  wakeup_ = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wakeup_) throw std::system_error(errno, std::generic_category(), "eventfd");
}

Server::~Server() {
  stop();
  drain();
}

void Server::run() {
  spdlog::info("listening on {} ({} mode, {} fib, n up to {}, at most {} connections)", local_.to_string(),
               to_string(config_.mode), fib::to_string(handler_.algorithm()), handler_.max_n(), max_connections_);
  try {
    accept_loop();
  } catch (...) {
    stop();  // whatever failed, no connection thread outlives run()
    drain();
    throw;
  }
  {
    std::lock_guard lock(mutex_);
    listener_.reset();  // stop accepting: new clients are refused from here on
  }
  drain();
}

void Server::accept_loop() {
  pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {wakeup_.get(), POLLIN, 0}};
  std::chrono::milliseconds backoff{0};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "poll");
    }
    if (fds[1].revents != 0) {
      // A stop, or a connection thread that has ended and wants joining.
      std::uint64_t count = 0;
      [[maybe_unused]] const ssize_t n = ::read(wakeup_.get(), &count, sizeof count);
      join_finished();
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    if (fds[0].revents == 0) continue;

    Endpoint peer;
    Fd fd = accept_connection(listener_.get(), &peer);
    if (!fd) {
      const int error = errno;
      if (is_resource_shortage(error)) {
        if (backoff.count() == 0) spdlog::warn("accept: {}; pausing accepts until resources free up",
                                               std::generic_category().message(error));
        backoff = std::clamp(backoff * 2, kAcceptBackoffFirst, kAcceptBackoffMax);
        ::poll(&fds[1], 1, static_cast<int>(backoff.count()));  // a stop cuts the pause short
      } else if (error != EAGAIN && error != EWOULDBLOCK) {
        // ECONNABORTED and the like: that client is gone, the next one is not.
        spdlog::debug("accept: {}", std::generic_category().message(error));
      }
      continue;
    }
    backoff = std::chrono::milliseconds{0};

    std::unique_lock lock(mutex_);
    if (live_.size() >= max_connections_) {
      lock.unlock();
      refuse(std::move(fd), peer);
      continue;
    }
    std::list<Live>::iterator self;
    try {
      self = live_.insert(live_.end(), Live{fd.get(), {}});
    } catch (const std::bad_alloc&) {
      lock.unlock();
      turn_away(std::move(fd), peer, "out of memory");
      continue;
    }
    if (stopping_) ::shutdown(fd.get(), SHUT_RD);  // stop() ran before we registered it
    if (config_.mode == Mode::sequential) {
      lock.unlock();
      serve(std::move(fd), peer, self);
      continue;
    }
    try {
      // The thread takes the descriptor only once it exists, so that on
      // failure it is still ours to answer and close.
      self->thread = std::thread([this, raw = fd.get(), peer, self] { serve(Fd(raw), peer, self); });
      fd.release();
    } catch (const std::exception& e) {  // std::system_error, or std::bad_alloc
      live_.erase(self);
      lock.unlock();
      turn_away(std::move(fd), peer, e.what());
    }
  }
}

// No thread for this client (out of threads or memory): say so and hang up.
void Server::turn_away(Fd fd, const Endpoint& peer, std::string_view why) {
  const std::uint64_t count = threads_failed_.fetch_add(1, std::memory_order_relaxed) + 1;
  spdlog::warn("cannot start a thread for {}: {} ({} so far)", peer.to_string(), why, count);
  hang_up(fd.get(), "error: server cannot start a thread for this connection; try again later\n");
}

// Over the connection limit: say so and hang up.
void Server::refuse(Fd fd, const Endpoint& peer) {
  spdlog::info("connection from {} refused: {} connections open (--max-connections)", peer.to_string(),
               max_connections_);
  hang_up(fd.get(), fmt::format("error: server busy: {} connections open, the most it serves at once; try again "
                                "later\n",
                                max_connections_));
}

// Sends `message` and ends our side without blocking the accept loop. What
// the client already sent is read first: left unread, it would turn the
// close into a reset that can overtake the message.
void Server::hang_up(int fd, std::string_view message) {
  ::send(fd, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(fd, SHUT_WR);
  char scratch[512];
  while (::recv(fd, scratch, sizeof scratch, MSG_DONTWAIT) > 0) {
  }
}

void Server::serve(Fd fd, const Endpoint& peer, std::list<Live>::iterator self) {
  try {
    serve_and_log(fd.get(), peer);
  } catch (...) {
    // Out of memory even for a log line: nothing more to say. The
    // connection still ends, and is unregistered, below.
  }
  std::lock_guard lock(mutex_);
  fd.reset();  // closed under the lock, so stop() never shuts down a reused descriptor
  if (self->thread.joinable()) {
    finished_.splice(finished_.end(), live_, self);  // moves the node: cannot fail
    wake();                                          // the accept loop joins it
  } else {
    live_.erase(self);
  }
  if (live_.empty()) all_closed_.notify_all();
}

void Server::serve_and_log(int fd, const Endpoint& peer) {
  const std::string name = peer.to_string();
  spdlog::info("connection from {} opened", name);
  ConnectionResult result;
  try {
    set_no_delay(fd);
    if (config_.idle_timeout.count() > 0) {
      set_receive_timeout(fd, config_.idle_timeout);
      set_send_timeout(fd, config_.idle_timeout);
    }
    result = serve_connection(fd, handler_, {&deadline_, config_.idle_timeout});
  } catch (const std::exception& e) {
    result.end = ConnectionResult::End::failed;
    spdlog::warn("connection from {}: {}", name, e.what());
  }
  if (result.end == ConnectionResult::End::failed && result.error != 0) {
    spdlog::info("connection from {} closed after {} requests: {}", name, result.requests,
                 std::generic_category().message(result.error));
  } else {
    spdlog::info("connection from {} closed after {} requests: {}", name, result.requests, to_string(result.end));
  }
}

void Server::wake() {
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t written = ::write(wakeup_.get(), &one, sizeof one);
}

void Server::stop() {
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  stopping_ = true;
  deadline_.set(std::chrono::steady_clock::now() + config_.shutdown_timeout);
  wake();
  // Idle connections see end of stream at once; busy ones after their
  // current requests are answered.
  for (const Live& live : live_) ::shutdown(live.fd, SHUT_RD);
}

void Server::drain() {
  std::unique_lock lock(mutex_);
  if (!all_closed_.wait_for(lock, config_.shutdown_timeout, [this] { return live_.empty(); })) {
    // Requests not yet started are abandoned (the deadline has passed); a
    // reply stuck in a send to a client that stopped reading is given up.
    spdlog::warn("{} connections still busy after {} ms; closing them", live_.size(),
                 config_.shutdown_timeout.count());
    for (const Live& live : live_) ::shutdown(live.fd, SHUT_RDWR);
    all_closed_.wait(lock, [this] { return live_.empty(); });
  }
  lock.unlock();
  join_finished();
}

void Server::join_finished() {
  std::list<Live> done;
  {
    std::lock_guard lock(mutex_);
    done.swap(finished_);
  }
  for (Live& ended : done) ended.thread.join();
}

}  // namespace fib
