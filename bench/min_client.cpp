// The yardstick for fib_perf's own overhead: the simplest blocking client
// there is. One thread per connection sends "N\n" and waits for the answer,
// over and over, for the given seconds; it checks nothing and measures
// nothing but the count. Usage: min_client HOST PORT CONNECTIONS SECONDS [N]
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "fib/net/socket.h"

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: min_client HOST PORT CONNECTIONS SECONDS [N]\n");
    return 2;
  }
  const fib::HostPort target{argv[1], static_cast<std::uint16_t>(std::atoi(argv[2]))};
  const int connections = std::atoi(argv[3]);
  const double seconds = std::atof(argv[4]);
  const std::string request = std::string(argc > 5 ? argv[5] : "1") + "\n";

  std::atomic<bool> stop{false};
  std::vector<std::uint64_t> counts(static_cast<std::size_t>(connections));
  std::vector<std::thread> threads;
  for (int i = 0; i < connections; ++i) {
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
      counts[static_cast<std::size_t>(i)] = count;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  std::uint64_t total = 0;
  for (const std::uint64_t c : counts) total += c;
  std::printf("%.1f req/s\n", static_cast<double>(total) / seconds);
}
