// The pieces the engines that block share (a thread per connection, and one
// connection at a time): the accept loop, and serving one connection on
// the calling thread with blocking system calls.
#pragma once

#include <functional>

#include "engine.h"
#include "fib/core/address.h"
#include "fib/net/socket.h"
#include "rules/connection_counters.h"
#include "rules/connection_driver.h"

namespace fib {

// Accepts on context.listener until a stop shuts it down, and hands each
// connection the book admits to `serve`. Throws std::system_error when the
// listener itself is broken.
void accept_blocking(const EngineContext& context, const std::function<void(Fd, Ticket)>& serve);

// At a stop's timeout: a send in progress on `fd` starts again under the
// stop's grace (StopState::kGrace) when the next wake interrupts it.
void give_sends_grace(int fd) noexcept;

// Serves `fd` on the calling thread until the connection ends (see
// connection_driver.h); counts what it sends in `counters`. A stop reaches it
// blocked in a receive through a signal (thread_wake.h); the idle and stall
// deadlines are the socket's receive and send timeouts, armed here. Slow
// requests are computed here too, at a lower priority. Does not close `fd`.
ConnectionResult serve_blocking(int fd, const EngineContext& context, ConnectionCounters& counters);

}  // namespace fib
