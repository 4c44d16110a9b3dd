// Command-line pieces both programs share (CLI11 is used by the mains only).
#pragma once

#include <cctype>
#include <charconv>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "fib/core/address.h"

namespace fib::cli {

// Checks an address with the same parser the programs use.
inline const CLI::Validator kHostPort(
    [](const std::string& text) {
      try {
        parse_host_port(text);
        return std::string();
      } catch (const std::invalid_argument& e) {
        return std::string(e.what());
      }
    },
    "");

// A number written the plain decimal way: digits with an optional sign,
// fraction and exponent ("2", "0.5", "1e3"). NaN, infinities and hexadecimal
// floats ("0x1p1") are not numbers here, whatever strtod makes of them.
inline std::optional<double> parse_decimal(std::string_view text) {
  if (text.empty() || text.find_first_not_of("0123456789.eE+-") != std::string_view::npos) return std::nullopt;
  if (text.front() == '+') text.remove_prefix(1);
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (end != text.data() + text.size()) return std::nullopt;
  if (error == std::errc::result_out_of_range) return std::numeric_limits<double>::max();  // out of any range
  if (error != std::errc()) return std::nullopt;
  return value;
}

// A floating-point option: a plain decimal number from `low` to `high` (or
// 0, which turns the feature off, when `zero_is_off`), else a message that
// says what is accepted.
inline CLI::Validator decimal_between(double low, double high, std::string_view unit, bool zero_is_off = false) {
  const std::string accepted = zero_is_off ? fmt::format("0 (off) or from {} to {} {}", low, high, unit)
                                           : fmt::format("from {} to {} {}", low, high, unit);
  return {[=](const std::string& text) {
            const std::optional<double> value = parse_decimal(text);
            if (!value) return fmt::format("{} is not a decimal number; give {}", text, accepted);
            if ((zero_is_off && *value == 0) || (*value >= low && *value <= high)) return std::string();
            return fmt::format("{} is out of range; give {}", text, accepted);
          },
          ""};
}

// `validator` without its description, which CLI11 would add to the type
// name in --help (UINT:UINT in [1 - 1024]): the option's help says it.
inline CLI::Validator quiet(CLI::Validator validator) {
  validator.description("");
  return validator;
}

// Parses argv; returns the exit status to leave with (0 after --help or
// --version, 2 for bad usage), or -1 to carry on. An unknown option is
// reported first: CLI11 would check the positional address before it, so
// `fib_server -d 3` would be refused as the bad address "3".
inline int parse(CLI::App& app, int argc, char** argv) {
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--") break;
      const bool number = arg.size() > 1 && (std::isdigit(static_cast<unsigned char>(arg[1])) != 0 || arg[1] == '.');
      if (arg.size() < 2 || arg[0] != '-' || number) continue;  // a positional, or a value such as -5
      const std::string name = arg.starts_with("--") ? arg.substr(0, arg.find('=')) : arg.substr(0, 2);
      if (app.get_option_no_throw(name) != nullptr) continue;
      if (name == "--port" || name == "-p" || name == "--host" || name == "--address")
        throw CLI::ValidationError(name,
                                   "there is no such option: the address is the argument, HOST:PORT, for "
                                   "instance 127.0.0.1:25000, or :25000 for every interface");
      throw CLI::ExtrasError({name});
    }
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
}

}  // namespace fib::cli
