// New connections per second: THREADS threads each connect, send "1\n",
// read the answer and close, over and over, for SECONDS. To an IPv4
// loopback server, each connection comes from a loopback source address of
// its own (127.T.x.y), so that the tens of thousands of TIME_WAIT sockets a
// run leaves do not make connect() search for a free local port: without
// it, the kernel's port search, not the server, sets the rate, and it
// changes with what earlier runs left behind.
// Usage: churn [HOST:PORT] -t THREADS -d SECONDS
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "fib/cli/options.h"
#include "fib/net/socket.h"

namespace {

// A blocking connection to the IPv4 loopback `server` from `source`, the
// local port chosen at connect() for the whole address pair.
fib::Fd connect_from(const sockaddr_in& server, std::uint32_t source) {
  fib::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int on = 1;
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(source);
  if (!fd || ::setsockopt(fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on) != 0 ||
      ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0 ||
      ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&server), sizeof server) != 0)
    return {};
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:25000";
  unsigned threads = 2;
  double seconds = 3;
  CLI::App app{"New connections per second: connect, ask fib(1), read the answer, close; in a loop per thread."};
  app.add_option("address", address, "server: HOST:PORT")->capture_default_str()->check(fib::cli::host_port());
  app.add_option("-t,--threads", threads, "threads, each connecting over and over")
      ->capture_default_str()
      ->check(CLI::Range(1u, 10000u));
  app.add_option("-d,--duration", seconds, "seconds to run")->capture_default_str()->check(CLI::Range(0.001, 1e7));
  if (const int status = fib::cli::parse(app, argc, argv); status >= 0) return status;
  const fib::HostPort target = fib::parse_host_port(address);
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(target.port);
  const bool spread =
      inet_pton(AF_INET, target.host.c_str(), &server.sin_addr) == 1 && (ntohl(server.sin_addr.s_addr) >> 24) == 127;

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> done{0}, failed{0};
  std::vector<std::thread> workers;
  for (unsigned i = 0; i < threads; ++i) {
    workers.emplace_back([&, i] {
      std::uint64_t ok = 0, bad = 0;
      char answer[32];
      for (std::uint32_t count = 0; !stop.load(std::memory_order_relaxed); ++count) {
        try {
          // 127.T.x.y: T from the thread, x.y cycling through 1 to 65534.
          const std::uint32_t source = (127U << 24) | ((i % 254 + 1) << 16) | (count % 65534 + 1);
          fib::Fd fd = spread ? connect_from(server, source) : fib::connect_tcp(target);
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
