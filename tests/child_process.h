// A real child process for program tests: argv in, stdout and stderr kept in
// temporary files, exit status out. Killed and reaped if still running when
// destroyed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fib::testing {

class ChildProcess {
 public:
  // Where the child's stderr goes: a temporary file err() reads, or a pipe
  // whose read end stderr_pipe() hands out (nobody reads it unless the test
  // does: a stalled log reader).
  enum class Stderr { file, pipe };
  ChildProcess(const std::string& binary, std::vector<std::string> args, Stderr stderr_to = Stderr::file);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  std::string out() const;
  std::string err() const;
  // The read end of the stderr pipe (Stderr::pipe only), non-blocking.
  int stderr_pipe() const { return stderr_pipe_; }
  void signal(int number);
  // CPU time (user + system) the child has used so far, from /proc.
  double cpu_seconds() const;
  // For each of the child's threads but the first, the size of the memory
  // mapping its stack pointer is in: its stack. Threads that are running
  // at the moment of looking are left out.
  std::vector<std::size_t> thread_stack_sizes() const;
  // The exit status (128 + signal if killed), or nullopt if still running
  // after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // For a fib_server child: the port from its "listening on 127.0.0.1:PORT" line.
  std::uint16_t wait_for_listening_port();

 private:
  pid_t pid_ = -1;
  std::string out_path_, err_path_;
  int stderr_pipe_ = -1;
  std::optional<int> exit_status_;
};

// A port that was free a moment ago.
std::uint16_t free_port();

}  // namespace fib::testing
