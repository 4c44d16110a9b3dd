// SIGINT and SIGTERM, turned from asynchronous interrupts into an ordinary
// call on an ordinary thread, so that stopping can take locks and log.
#pragma once

#include <signal.h>

#include <functional>
#include <thread>

#include "fib/net/socket.h"

namespace fib {

class StopSignals {
 public:
  // Blocks SIGINT and SIGTERM in the calling thread, and so in every thread
  // it starts afterwards: construct this before starting other threads. The
  // first signal calls on_stop(signal number) on the watcher's thread. More
  // signals within 100 ms of the first are the same request (timeout(1)
  // sends two at once); a later one ends the process at once with status 1,
  // even if on_stop is still running.
  explicit StopSignals(std::function<void(int)> on_stop);
  // Stops watching and joins the watcher thread. The signals stay blocked.
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  void watch();

  std::function<void(int)> on_stop_;
  sigset_t set_;  // SIGINT and SIGTERM
  Fd signals_;    // signalfd for SIGINT and SIGTERM
  Fd done_;       // eventfd: the destructor writes it to end watch()
  std::thread watcher_;
};

}  // namespace fib
