// New connections per second: THREADS threads each connect, send "1\n",
// read the answer and close, over and over, for SECONDS.
// Usage: churn HOST:PORT THREADS SECONDS
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "fib/core/address.h"
#include "fib/net/socket.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: churn HOST:PORT THREADS SECONDS\n");
    return 2;
  }
  const fib::HostPort target = fib::parse_host_port(argv[1]);
  const int threads = std::atoi(argv[2]);
  const double seconds = std::atof(argv[3]);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> done{0}, failed{0};
  std::vector<std::thread> workers;
  for (int i = 0; i < threads; ++i) {
    workers.emplace_back([&] {
      std::uint64_t ok = 0, bad = 0;
      char answer[32];
      while (!stop.load(std::memory_order_relaxed)) {
        try {
          fib::Fd fd = fib::connect_tcp(target);
          if (fib::send_all(fd.get(), "1\n") && fib::receive_some(fd.get(), answer) > 0) ++ok;
          else ++bad;
        } catch (const std::exception&) {
          ++bad;
        }
      }
      done += ok;
      failed += bad;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : workers) t.join();
  std::printf("%.1f connections/s (%llu failed)\n", static_cast<double>(done.load()) / seconds,
              static_cast<unsigned long long>(failed.load()));
  return failed.load() == 0 ? 0 : 1;
}
