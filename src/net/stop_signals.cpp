#include "fib/net/stop_signals.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <ctime>
#include <system_error>

namespace fib {

StopSignals::StopSignals(std::function<void(int)> on_stop) : on_stop_(std::move(on_stop)) {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  sigaddset(&set_, SIGHUP);  // the terminal or ssh session went away
  if (const int rc = pthread_sigmask(SIG_BLOCK, &set_, nullptr); rc != 0)
    throw std::system_error(rc, std::generic_category(), "pthread_sigmask");
  // Non-blocking: once the first signal has unblocked the stop signals in the
  // watcher, a signal poll() saw pending may be taken by the handler before
  // the read, which must then not block.
  signals_ = Fd(::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals_) throw std::system_error(errno, std::generic_category(), "signalfd");
  done_ = Fd(::eventfd(0, EFD_CLOEXEC));
  if (!done_) throw std::system_error(errno, std::generic_category(), "eventfd");
  watcher_ = std::thread([this] { watch(); });
}

StopSignals::~StopSignals() {
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t written = ::write(done_.get(), &one, sizeof one);
  watcher_.join();
}

namespace {

// Signals within this long of the first are the same request to stop:
// timeout(1) signals the server and then its process group at once, and
// scripts send SIGTERM to several processes that may include it twice.
constexpr long long kSameStopNanoseconds = 100'000'000;  // 100 ms
std::atomic<long long> first_signal_at{0};               // CLOCK_MONOTONIC, ns

long long monotonic_ns() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);  // async-signal-safe
  return static_cast<long long>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

// A later signal. Async-signal-safe: a clock read, an atomic load, _exit.
void exit_at_once(int) {
  if (monotonic_ns() - first_signal_at.load() < kSameStopNanoseconds) return;
  ::_exit(1);
}

// From the first signal on, a second one must end the process even if
// on_stop, or anything it waits for, never returns: give SIGINT and SIGTERM
// a handler that exits (SIGHUP too), and let them through to this thread, the only one
// that does not block them.
void arm_second_signal(const sigset_t& set) {
  first_signal_at.store(monotonic_ns());
  struct sigaction action {};
  action.sa_handler = exit_at_once;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGHUP, &action, nullptr);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

}  // namespace

void StopSignals::watch() {
  pollfd fds[2] = {{signals_.get(), POLLIN, 0}, {done_.get(), POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    signalfd_siginfo info{};
    if (::read(signals_.get(), &info, sizeof info) != static_cast<ssize_t>(sizeof info)) continue;
    arm_second_signal(set_);
    on_stop_(static_cast<int>(info.ssi_signo));
  }
}

}  // namespace fib
