// SIGINT, SIGTERM and SIGHUP (the stop signals), turned from asynchronous interrupts into an ordinary
// call on an ordinary thread, so that stopping can take locks and log.
#pragma once

#include <signal.h>

#include <functional>
#include <thread>

#include "fib/net/socket.h"

namespace fib {

class StopSignals {
 public:
  // Blocks the stop signals in the calling thread, and so in every thread
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
  sigset_t set_;  // the stop signals
  Fd signals_;    // signalfd for the stop signals
  Fd done_;       // eventfd: the destructor writes it to end watch()
  std::thread watcher_;
};

}  // namespace fib
