// The yardstick for fib_perf's own overhead: the simplest blocking client
// there is. One thread per connection sends "N\n" and waits for the answer,
// over and over, for the given seconds; it checks nothing and measures
// nothing but the count. Usage: min_client [HOST:PORT] -c CONNECTIONS -d SECONDS [-n N]
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "fib/cli/options.h"
#include "fib/core/fib.h"
#include "fib/net/socket.h"

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:25000";
  unsigned connections = 1, n = 1;
  double seconds = 3;
  CLI::App app{"The simplest blocking client: send, receive, count; fib_perf's yardstick."};
  app.add_option("address", address, "server: HOST:PORT")->capture_default_str()->check(fib::cli::host_port());
  app.add_option("-c,--connections", connections, "connections, one thread each")
      ->capture_default_str()
      ->check(CLI::Range(1u, 100000u));
  app.add_option("-d,--duration", seconds, "seconds to run")->capture_default_str()->check(CLI::Range(0.001, 1e7));
  app.add_option("-n,--number", n, "the Fibonacci index sent")
      ->capture_default_str()
      ->check(CLI::Range(0u, fib::kMaxIndex));
  if (const int status = fib::cli::parse(app, argc, argv); status >= 0) return status;
  const fib::HostPort target = fib::parse_host_port(address);
  const std::string request = std::to_string(n) + "\n";

  std::atomic<bool> stop{false};
  std::vector<std::uint64_t> counts(connections);
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < connections; ++i) {
    threads.emplace_back([&, i] {
      fib::Fd fd = fib::connect_tcp(target);
      fib::set_no_delay(fd.get());
      char buffer[100];
      std::uint64_t count = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (::send(fd.get(), request.data(), request.size(), 0) <= 0) break;
        if (::recv(fd.get(), buffer, sizeof buffer, 0) <= 0) break;
        ++count;
      }
      counts[i] = count;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  std::uint64_t total = 0;
  for (const std::uint64_t c : counts) total += c;
  std::printf("%.1f req/s\n", static_cast<double>(total) / seconds);
}
