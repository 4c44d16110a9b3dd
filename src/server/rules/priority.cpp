#include "priority.h"

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>

namespace fib {

namespace {

id_t this_thread() { return static_cast<id_t>(::gettid()); }

}  // namespace

void lower_priority() {
  sched_param param{};
  ::sched_setscheduler(0, SCHED_BATCH, &param);  // this thread only, on Linux
  ::setpriority(PRIO_PROCESS, this_thread(), kComputeNice);
}

bool restore_priority() {
  sched_param param{};
  ::sched_setscheduler(0, SCHED_OTHER, &param);
  return ::setpriority(PRIO_PROCESS, this_thread(), 0) == 0;
}

bool normal_priority() {
  errno = 0;
  const int nice = ::getpriority(PRIO_PROCESS, this_thread());
  return errno == 0 && nice == 0;
}

}  // namespace fib
