// Opens N connections to a server and holds them open, idle, until killed
// or until SECONDS have passed: for measuring what an idle connection costs
// the server. With --ask, each connection first sends "1\n" and reads the
// answer, so that the server has served it once.
// Usage: hold_connections [HOST:PORT] -c N -d SECONDS [--ask]
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "fib/cli/options.h"
#include "fib/net/socket.h"

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:25000";
  unsigned count = 100;
  double seconds = 60;
  bool ask = false;
  CLI::App app{"Holds idle connections open to a server, for memory per connection."};
  app.add_option("address", address, "server: HOST:PORT")->capture_default_str()->check(fib::cli::host_port());
  app.add_option("-c,--connections", count, "connections to open and hold")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1000000u));
  app.add_option("-d,--duration", seconds, "seconds to hold them")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 1e7));
  app.add_flag("--ask", ask, "have each connection served once (\"1\\n\") before holding it");
  if (const int status = fib::cli::parse(app, argc, argv); status >= 0) return status;
  const fib::HostPort target = fib::parse_host_port(address);

  std::vector<fib::Fd> held;
  held.reserve(count);
  for (unsigned i = 0; i < count; ++i) {
    held.push_back(fib::connect_tcp(target));
    if (ask) {
      char answer[32];
      if (!fib::send_all(held.back().get(), "1\n") || fib::receive_some(held.back().get(), answer) <= 0) {
        std::fprintf(stderr, "hold_connections: connection %u was not served\n", i);
        return 1;
      }
    }
  }
  std::printf("holding %u connections\n", count);
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
}
