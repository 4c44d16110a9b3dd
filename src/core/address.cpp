#include "fib/core/address.h"

#include <charconv>
#include <stdexcept>

#include <fmt/format.h>

namespace fib {

namespace {

[[noreturn]] void reject(std::string_view text, std::string_view why) {
  throw std::invalid_argument(
      fmt::format("bad address \"{}\": {} (expected HOST:PORT, [IPV6]:PORT or :PORT)", text, why));
}

}  // namespace

HostPort parse_host_port(std::string_view text) {
  std::string_view host, port;
  if (text.starts_with('[')) {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) reject(text, "missing ']'");
    host = text.substr(1, close - 1);
    if (host.empty()) reject(text, "empty IPv6 address");
    if (text.substr(close + 1, 1) != ":") reject(text, "missing ':PORT' after ']'");
    port = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      if (!text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos)
        reject(text, fmt::format("missing ':PORT'; for port {0}, write :{0} (every interface) or 127.0.0.1:{0}", text));
      reject(text, "missing ':PORT'");
    }
    host = text.substr(0, colon);
    if (host.find(':') != std::string_view::npos) reject(text, "put an IPv6 address in brackets");
    port = text.substr(colon + 1);
  }
  if (port.empty()) reject(text, "missing port");
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc{} || end != port.data() + port.size() || value > 65535)
    reject(text, "port must be a number from 0 to 65535");
  return {std::string(host), static_cast<std::uint16_t>(value)};
}

std::string format_host_port(std::string_view host, std::uint16_t port) {
  if (host.find(':') != std::string_view::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

}  // namespace fib
