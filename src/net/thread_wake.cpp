#include "fib/net/thread_wake.h"

#include <signal.h>

namespace fib {

namespace {

constexpr int kWakeSignal = SIGUSR1;

}  // namespace

void install_thread_wake() {
  struct sigaction action {};
  action.sa_handler = [](int) {};
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: interrupt blocking calls
  sigaction(kWakeSignal, &action, nullptr);
}

void accept_thread_wake() {
  sigset_t wake;
  sigemptyset(&wake);
  sigaddset(&wake, kWakeSignal);
  pthread_sigmask(SIG_UNBLOCK, &wake, nullptr);
}

void wake(pthread_t thread) { pthread_kill(thread, kWakeSignal); }

}  // namespace fib
