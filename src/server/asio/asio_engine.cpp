#include "asio_engine.h"

#include <fcntl.h>
#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <cstring>
#include <system_error>

#include <fmt/format.h>

namespace fib {

namespace {

using asio::awaitable;

constexpr auto kNoThrow = asio::experimental::as_tuple(asio::use_awaitable);

// The descriptors each event loop holds: its copy of the listener, its
// epoll, eventfd and timerfd.
constexpr unsigned kDescriptorsPerLoop = 4;

Endpoint to_endpoint(const asio::ip::tcp::endpoint& from) {
  Endpoint to;
  to.length = static_cast<socklen_t>(std::min<std::size_t>(from.size(), sizeof to.storage));
  std::memcpy(&to.storage, from.data(), to.length);
  return to;
}

}  // namespace

AsioEngine::AsioEngine(const EngineContext& context) : LoopEngine(context, "event loops") {
  const auto protocol = context.local.storage.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4();
  for (unsigned i = 0; i < context.loops; ++i) {
    auto loop = std::make_unique<AsioLoop>(context);
    // Every loop waits on the one listening socket; whichever is free takes
    // the next connection, and hands it to the loop whose turn it is.
    Fd copy(::fcntl(context.listener, F_DUPFD_CLOEXEC, 0));
    if (!copy) throw std::system_error(errno, std::generic_category(), "dup listener");
    loop->acceptor.emplace(loop->io, protocol, copy.get());
    copy.release();
    loops_.push_back(std::move(loop));
  }
}

AsioEngine::~AsioEngine() = default;

unsigned AsioEngine::descriptors_held() const { return kDescriptorsPerLoop * static_cast<unsigned>(loops_.size()); }

void AsioEngine::run_loop(std::size_t index) {
  AsioLoop& loop = *loops_[index];
  loop.clock.start();
  const auto on_failure = [this](const std::exception_ptr& error) {
    if (error) fail(error);
  };
  asio::co_spawn(loop.io, accept(loop), on_failure);
  asio::co_spawn(loop.io, sweeper(loop, context_.rules), on_failure);
  for (;;) {
    try {
      loop.io.run();
      break;
    } catch (...) {
      fail(std::current_exception());
    }
  }
  loop.clock.stop();
}

void AsioEngine::stop() {
  for (const auto& loop : loops_) {
    asio::post(loop->io, [&loop = *loop] {
      asio::error_code ignored;
      if (loop.acceptor) loop.acceptor->close(ignored);
      if (loop.accept_pause != nullptr) loop.accept_pause->cancel();  // out of descriptors: stop waiting
      for (AsioConnection& connection : loop.connections)
        if (connection.wait.what == Wait::For::receive) connection.socket.cancel(ignored);
      for (AsioConnection& connection : loop.parked) connection.socket.cancel(ignored);
      if (loop.sweep_timer != nullptr) loop.sweep_timer->cancel();
    });
  }
}

void AsioEngine::abandon() {
  for (const auto& loop : loops_) {
    asio::post(loop->io, [&loop = *loop] {
      loop.send_limit = Clock::now() + StopState::kGrace;
      if (loop.sweep_timer != nullptr) loop.sweep_timer->cancel();
    });
  }
}

awaitable<void> AsioEngine::accept(AsioLoop& loop) {
  AcceptPolicy policy;
  asio::steady_timer pause(loop.io);
  loop.accept_pause = &pause;
  asio::ip::tcp::endpoint peer;
  const StopState& stop = *context_.rules.stop;
  while (!stop.stopping()) {
    auto [error, socket] = co_await loop.acceptor->async_accept(peer, kNoThrow);
    if (error) {
      if (stop.stopping()) break;
      switch (policy.failed(error.value())) {
        case AcceptPolicy::Then::next: continue;
        case AcceptPolicy::Then::pause:
          pause.expires_after(policy.pause());
          co_await pause.async_wait(kNoThrow);
          continue;
        case AcceptPolicy::Then::broken: throw std::system_error(error.value(), std::generic_category(), "accept");
      }
    }
    policy.succeeded();
    hand_over(loop, std::move(socket), to_endpoint(peer));
  }
  loop.accept_pause = nullptr;
  asio::error_code ignored;
  loop.acceptor->close(ignored);
}

void AsioEngine::hand_over(AsioLoop& from, asio::ip::tcp::socket socket, const Endpoint& peer) noexcept {
  AsioLoop& to = *loops_[next_loop()];
  if (&to == &from || !to.arrivals.expect()) return welcome(from, std::move(socket), peer);  // or that loop has ended
  asio::error_code error;
  Fd fd(socket.release(error));
  if (!fd) {  // still the socket's
    to.arrivals.landed();
    return welcome(from, std::move(socket), peer);
  }
  try {
    asio::post(to.io, [this, &to, fd = fd.get(), peer] {
      to.arrivals.landed();
      arrive(to, Fd(fd), peer);
    });
    fd.release();
  } catch (const std::bad_alloc&) {  // no memory to hand it over: served here
    to.arrivals.landed();
    arrive(from, std::move(fd), peer);
  }
}

void AsioEngine::arrive(AsioLoop& loop, Fd fd, const Endpoint& peer) noexcept {
  asio::error_code error;
  asio::ip::tcp::socket socket(loop.io);
  socket.assign(peer.storage.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd.get(), error);
  if (error) {  // no memory to watch it: refused as welcome() would
    if (Ticket ticket = context_.book.admit(fd.get(), peer)) ticket.turn_away(fd.get(), Refusal::no_memory);
    return;
  }
  fd.release();
  welcome(loop, std::move(socket), peer);
}

void AsioEngine::welcome(AsioLoop& loop, asio::ip::tcp::socket socket, const Endpoint& peer) noexcept {
  // Non-blocking for Asio too, not only underneath: a synchronous
  // write_some into a full send buffer then says would_block instead of
  // waiting in poll(), which would hold up every connection of the loop
  // and the sweeper that cuts off a client that stopped reading.
  asio::error_code blocking;
  socket.non_blocking(true, blocking);
  Ticket ticket = context_.book.admit(socket.native_handle(), peer);
  if (!ticket) return;
  AsioConnections::iterator connection;
  try {
    connection = loop.connections.emplace(loop.connections.end(), std::move(socket), std::move(ticket), context_, loop);
  } catch (const std::bad_alloc&) {  // no node: nothing was moved
    ticket.turn_away(socket.native_handle(), Refusal::no_memory);
    return;  // the socket closes
  }
  add(loop.open, 1);
  start(loop, connection);
}

void AsioEngine::start(AsioLoop& loop, AsioConnections::iterator connection) noexcept {
  try {
    asio::co_spawn(loop.io, serve(loop, connection), asio::detached);
  } catch (...) {
    end(loop, connection, {.end = End::failed});  // out of memory for a coroutine: the connection closes
  }
}

awaitable<void> AsioEngine::serve(AsioLoop& loop, AsioConnections::iterator connection) {
  ConnectionResult result{.end = End::failed};
  try {
    if (!co_await serve_on_loop(*connection, loop, context_.rules, workers_)) {
      park(loop, connection);
      co_return;
    }
    result = connection->driver.result();
  } catch (...) {
    // Out of memory: the connection ends, and is counted out, all the same.
  }
  end(loop, connection, result);
}

void AsioEngine::end(AsioLoop& loop, AsioConnections::iterator connection, const ConnectionResult& result) noexcept {
  Ticket ticket = std::move(connection->ticket);
  loop.connections.erase(connection);  // closes the socket
  add(loop.open, -1);
  ticket.close(result);
}

// The parked connection's coroutine has ended; what is left waits for input
// with a plain handler (no frame), and starts a new coroutine when input,
// the sweeper (idle) or a stop ends the wait.
void AsioEngine::park(AsioLoop& loop, AsioConnections::iterator connection) noexcept {
  if (context_.rules.stop->stopping()) {  // the stop has cancelled every wait already
    start(loop, connection);
    return;
  }
  const auto serve_again = [this, &loop, connection](const asio::error_code& /*any: the coroutine sees why*/) {
    connection->wait.end();
    loop.connections.splice(loop.connections.end(), loop.parked, connection);
    add(loop.parked_connections, -1);
    start(loop, connection);
  };
  connection->wait_for(Wait::For::parked, connection->driver.idle_deadline());
  try {
    connection->socket.async_wait(asio::socket_base::wait_read, serve_again);
  } catch (...) {
    end(loop, connection, {.end = End::failed});  // out of memory for the wait: the connection closes
    return;
  }
  // Armed first: the wait cannot end before this (the loop runs it later).
  loop.parked.splice(loop.parked.end(), loop.connections, connection);
  add(loop.parked_connections, 1);
}

}  // namespace fib
