// Listening and connecting addresses as users write them. Pure: no sockets.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace fib {

struct HostPort {
  std::string host;  // empty: all interfaces; IPv6 literals without brackets
  std::uint16_t port = 0;
};

// Accepts "host:port", "[ipv6]:port", "localhost:port" and ":port"; port 0
// asks for an ephemeral port. Throws std::invalid_argument saying what is
// wrong and which forms are accepted.
HostPort parse_host_port(std::string_view text);

// The inverse: "[::1]:25000" for IPv6 literals, "host:port" otherwise.
std::string format_host_port(std::string_view host, std::uint16_t port);

}  // namespace fib
