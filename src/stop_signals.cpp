#include "fib_server/stop_signals.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <system_error>

namespace fib {

StopSignals::StopSignals(std::function<void(int)> on_stop) : on_stop_(std::move(on_stop)) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (const int rc = pthread_sigmask(SIG_BLOCK, &set, nullptr); rc != 0)
    throw std::system_error(rc, std::generic_category(), "pthread_sigmask");
  signals_ = Fd(::signalfd(-1, &set, SFD_CLOEXEC));
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

void StopSignals::watch() {
  pollfd fds[2] = {{signals_.get(), POLLIN, 0}, {done_.get(), POLLIN, 0}};
  bool stopping = false;
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    signalfd_siginfo info{};
    if (::read(signals_.get(), &info, sizeof info) != static_cast<ssize_t>(sizeof info)) continue;
    if (stopping) {
      static constexpr char kMessage[] = "second stop signal: exiting at once\n";
      [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
      ::_exit(1);
    }
    stopping = true;
    on_stop_(static_cast<int>(info.ssi_signo));
  }
}

}  // namespace fib
