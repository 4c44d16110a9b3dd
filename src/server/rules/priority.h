// The priority slow requests are computed at: below the threads that answer
// quick requests, so that those never wait for a CPU behind a computation
// (SCHED_BATCH, and a nice value 10 higher). Applies to the calling thread.
#pragma once

namespace fib {

inline constexpr int kComputeNice = 10;

void lower_priority();
// Back to the normal priority; false where this process may not lower its
// nice value again (without CAP_SYS_NICE or a high enough RLIMIT_NICE): the
// thread then stays at the lower priority.
bool restore_priority();
// The calling thread runs at the normal priority.
bool normal_priority();

}  // namespace fib
