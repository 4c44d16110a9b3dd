// Waking a thread blocked in a system call (a receive, a send, a poll), so
// that it can look at a flag: a signal whose handler does nothing, installed
// without SA_RESTART, makes the call fail with EINTR. The signal is SIGUSR1,
// so a SIGUSR1 sent from outside does nothing either.
//
// A thread that was about to block when the signal came misses it: callers
// repeat wake() until the thread has seen what it was woken for.
#pragma once

#include <pthread.h>

namespace fib {

// Installs the handler, process-wide. Idempotent.
void install_thread_wake();
// Lets the calling thread be woken even if the program blocks the signal.
void accept_thread_wake();
// Interrupts `thread`'s blocking call, if it is in one. The thread must be
// alive.
void wake(pthread_t thread);

}  // namespace fib
