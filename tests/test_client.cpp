#include "test_client.h"

#include <poll.h>
#include <sys/socket.h>

#include <memory>
#include <stdexcept>

namespace fib::testing {

RunningServer::RunningServer(ServerConfig config) {
  config.address = {"127.0.0.1", 0};
  server_ = std::make_unique<Server>(config);
  runner_ = std::thread([this] { server_->run(); });
}

RunningServer::~RunningServer() { stop_and_join(); }

void RunningServer::stop_and_join() {
  server_->stop();
  if (runner_.joinable()) runner_.join();
}

ScriptedServer::ScriptedServer(std::function<void(int fd)> handle) {
  Endpoint bound;
  listener_ = listen_tcp({"127.0.0.1", 0}, &bound);
  port_ = bound.port();
  acceptor_ = std::thread([this, handle = std::move(handle)] {
    while (!done_) {
      pollfd p{listener_.get(), POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      Endpoint peer;
      Fd fd = accept_connection(listener_.get(), &peer);
      if (!fd) continue;
      handlers_.emplace_back([handle, fd = std::make_shared<Fd>(std::move(fd))] { handle(fd->get()); });
    }
  });
}

ScriptedServer::~ScriptedServer() {
  done_ = true;
  acceptor_.join();
  for (std::thread& t : handlers_) t.join();
}

Client::Client(std::uint16_t port, const std::string& host) : fd_(connect_tcp({host, port})) {}

void Client::send(std::string_view data) {
  if (!send_all(fd_.get(), data)) throw std::runtime_error("send failed");
}

void Client::shutdown_write() { ::shutdown(fd_.get(), SHUT_WR); }

bool Client::fill(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  pollfd p{fd_.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(std::max<long long>(left.count(), 0))) <= 0) return false;
  char buffer[65536];
  const std::ptrdiff_t n = receive_some(fd_.get(), buffer);
  if (n <= 0) return false;
  pending_.append(buffer, static_cast<std::size_t>(n));
  return true;
}

std::optional<std::string> Client::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (const std::size_t newline = pending_.find('\n'); newline != std::string::npos) {
      std::string line = pending_.substr(0, newline);
      pending_.erase(0, newline + 1);
      return line;
    }
    if (!fill(deadline)) return std::nullopt;
  }
}

std::vector<std::string> Client::read_lines(std::size_t count, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<std::string> lines;
  while (lines.size() < count) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto line = read_line(std::max(left, std::chrono::milliseconds(0)));
    if (!line) break;
    lines.push_back(std::move(*line));
  }
  return lines;
}

bool Client::read_eof(std::chrono::milliseconds timeout) {
  if (!pending_.empty()) return false;
  pollfd p{fd_.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char byte;
  return receive_some(fd_.get(), {&byte, 1}) == 0;
}

bool Client::read_stopping_then_eof(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (read_line(timeout) != "error: server stopping") return false;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return read_eof(std::max(left, std::chrono::milliseconds(0)));
}

bool Client::readable_within(std::chrono::milliseconds timeout) {
  if (!pending_.empty()) return true;
  pollfd p{fd_.get(), POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
}

}  // namespace fib::testing
