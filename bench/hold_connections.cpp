// Opens N connections to a server and holds them open, idle, until killed
// or until SECONDS have passed: for measuring what an idle connection costs
// the server. With a third argument "ask", each connection first sends "1\n"
// and reads the answer, so that the server has served it once.
// Usage: hold_connections HOST:PORT N SECONDS [ask]
#include <unistd.h>

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
    std::fprintf(stderr, "usage: hold_connections HOST:PORT N SECONDS [ask]\n");
    return 2;
  }
  const fib::HostPort target = fib::parse_host_port(argv[1]);
  const int count = std::atoi(argv[2]);
  const double seconds = std::atof(argv[3]);
  const bool ask = argc > 4 && std::string(argv[4]) == "ask";
  std::vector<fib::Fd> held;
  held.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    held.push_back(fib::connect_tcp(target));
    if (ask) {
      char answer[32];
      if (!fib::send_all(held.back().get(), "1\n") || fib::receive_some(held.back().get(), answer) <= 0) {
        std::fprintf(stderr, "hold_connections: connection %d was not served\n", i);
        return 1;
      }
    }
  }
  std::printf("holding %d connections\n", count);
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
}
