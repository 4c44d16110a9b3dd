#include "child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <system_error>
#include <thread>

#include <gtest/gtest.h>

#include "eventually.h"
#include "fib/net/socket.h"

extern char** environ;

namespace fib::testing {

using namespace std::chrono_literals;

namespace {

std::string temporary_file(int* fd) {
  char path[] = "/tmp/fib_test_XXXXXX";
  *fd = ::mkstemp(path);
  if (*fd < 0) throw std::system_error(errno, std::generic_category(), "mkstemp");
  return path;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

ChildProcess::ChildProcess(const std::string& binary, std::vector<std::string> args, Stderr stderr_to) {
  int out = -1, err = -1;
  out_path_ = temporary_file(&out);
  if (stderr_to == Stderr::file) {
    err_path_ = temporary_file(&err);
  } else {
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    stderr_pipe_ = ends[0];
    err = ends[1];
    ::fcntl(stderr_pipe_, F_SETFL, O_NONBLOCK);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err, STDERR_FILENO);
  args.insert(args.begin(), binary);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const int rc = posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out);
  ::close(err);
  if (rc != 0) throw std::system_error(rc, std::generic_category(), "posix_spawn " + binary);
}

ChildProcess::~ChildProcess() {
  if (!exit_status_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  ::unlink(out_path_.c_str());
  if (!err_path_.empty()) ::unlink(err_path_.c_str());
  if (stderr_pipe_ >= 0) ::close(stderr_pipe_);
}

std::string ChildProcess::out() const { return read_file(out_path_); }
std::string ChildProcess::err() const { return err_path_.empty() ? std::string() : read_file(err_path_); }

void ChildProcess::signal(int number) { ::kill(pid_, number); }

std::vector<std::size_t> ChildProcess::thread_stack_sizes() const {
  const std::string proc = "/proc/" + std::to_string(pid_);
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> mappings;  // [begin, end)
  std::istringstream maps(read_file(proc + "/maps"));
  for (std::string line; std::getline(maps, line);) {
    std::uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream(line) >> std::hex >> begin >> dash >> end;
    mappings.emplace_back(begin, end);
  }
  std::vector<std::size_t> sizes;
  for (const auto& task : std::filesystem::directory_iterator(proc + "/task")) {
    if (task.path().filename() == std::to_string(pid_)) continue;
    // "NR ARG1 ... ARG6 SP PC" in a system call, "-1 SP PC" blocked outside one, "running".
    std::istringstream syscall(read_file(task.path().string() + "/syscall"));
    std::vector<std::string> fields;
    for (std::string field; syscall >> field;) fields.push_back(field);
    if (fields.size() < 3) continue;
    const std::uintptr_t sp = std::stoull(fields[fields.size() - 2], nullptr, 16);
    for (const auto& [begin, end] : mappings) {
      if (begin <= sp && sp < end) sizes.push_back(end - begin);
    }
  }
  return sizes;
}

double ChildProcess::cpu_seconds() const {
  const std::string stat = read_file("/proc/" + std::to_string(pid_) + "/stat");
  // Fields after the command name, which is in parentheses and may hold spaces.
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  eventually(
      [&] {
        int status = 0;
        if (!exit_status_ && ::waitpid(pid_, &status, WNOHANG) == pid_)
          exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return exit_status_.has_value();
      },
      timeout);
  return exit_status_;
}

std::uint16_t ChildProcess::wait_for_listening_port() {
  const std::regex listening(R"(listening on 127\.0\.0\.1:(\d+))");
  std::uint16_t port = 0;
  const auto listening_line = [&] {
    std::smatch match;
    const std::string text = err();
    if (std::regex_search(text, match, listening)) port = static_cast<std::uint16_t>(std::stoi(match[1]));
    return port != 0;
  };
  if (!eventually(listening_line, 10s)) ADD_FAILURE() << "no 'listening on' line; stderr:\n" << err();
  return port;
}

std::uint16_t free_port() {
  Endpoint bound;
  listen_tcp({"127.0.0.1", 0}, &bound);  // closed again at once
  return bound.port();
}

}  // namespace fib::testing
