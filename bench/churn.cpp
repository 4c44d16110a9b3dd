// New connections per second: THREADS threads each connect, send "1\n",
// read the answer and close, over and over, for SECONDS.
// Usage: churn [HOST:PORT] -t THREADS -d SECONDS
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "cli_common.h"
#include "fib/net/socket.h"

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:25000";
  unsigned threads = 2;
  double seconds = 3;
  CLI::App app{"New connections per second: connect, ask fib(1), read the answer, close; in a loop per thread."};
  app.add_option("address", address, "server: HOST:PORT")->capture_default_str()->check(fib::cli::kHostPort);
  app.add_option("-t,--threads", threads, "threads, each connecting over and over")
      ->capture_default_str()
      ->check(CLI::Range(1u, 10000u));
  app.add_option("-d,--duration", seconds, "seconds to run")->capture_default_str()->check(CLI::Range(0.001, 1e7));
  if (const int status = fib::cli::parse(app, argc, argv); status >= 0) return status;
  const fib::HostPort target = fib::parse_host_port(address);

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> done{0}, failed{0};
  std::vector<std::thread> workers;
  for (unsigned i = 0; i < threads; ++i) {
    workers.emplace_back([&] {
      std::uint64_t ok = 0, bad = 0;
      char answer[32];
      while (!stop.load(std::memory_order_relaxed)) {
        try {
          fib::Fd fd = fib::connect_tcp(target);
          if (fib::send_all(fd.get(), "1\n") && fib::receive_some(fd.get(), answer) > 0)
            ++ok;
          else
            ++bad;
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
