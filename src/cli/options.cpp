#include "fib/cli/options.h"

#include <cctype>
#include <charconv>
#include <limits>
#include <stdexcept>
#include <string>
#include <system_error>

#include <fmt/format.h>

#include "fib/core/address.h"

namespace fib::cli {

CLI::Validator host_port() {
  return {[](const std::string& text) {
            try {
              parse_host_port(text);
              return std::string();
            } catch (const std::invalid_argument& e) {
              return std::string(e.what());
            }
          },
          ""};
}

std::optional<double> parse_decimal(std::string_view text) {
  if (text.empty() || text.find_first_not_of("0123456789.eE+-") != std::string_view::npos) return std::nullopt;
  if (text.front() == '+') text.remove_prefix(1);
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (end != text.data() + text.size()) return std::nullopt;
  if (error == std::errc::result_out_of_range) return std::numeric_limits<double>::max();  // out of any range
  if (error != std::errc()) return std::nullopt;
  return value;
}

CLI::Validator decimal_between(double low, double high, std::string_view unit, bool zero_is_off) {
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

CLI::Validator quiet(CLI::Validator validator) {
  validator.description("");
  return validator;
}

int parse(CLI::App& app, int argc, char** argv) {
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

ParsedWhole parse_whole(std::string_view text) {
  bool negative = false;
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos) return {};
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error == std::errc::result_out_of_range) return {WholeNumber::out_of_range, 0};
  if (error != std::errc() || end != text.data() + text.size()) return {};
  if (negative && value != 0) return {WholeNumber::out_of_range, 0};  // below any range here: they start at 0
  return {WholeNumber::ok, value};
}

CLI::Validator whole_between(std::uint64_t low, std::uint64_t high) {
  const std::string accepted = fmt::format("give from {} to {}", low, high);
  return {[=](std::string& text) {
            const ParsedWhole parsed = parse_whole(text);
            if (parsed.kind == WholeNumber::not_whole)
              return fmt::format("{} is not a whole number; {}", text, accepted);
            if (parsed.kind == WholeNumber::out_of_range || parsed.value < low || parsed.value > high)
              return fmt::format("{} is out of range; {}", text, accepted);
            text = std::to_string(parsed.value);
            return std::string();
          },
          ""};
}

void add_version_and_address(CLI::App& app, std::string_view program, std::string& address, std::string_view type_name,
                             std::string_view help) {
  app.set_version_flag("--version", fmt::format("{} {}", program, FIB_SERVER_VERSION));
  app.add_option("address", address, std::string(help))
      ->capture_default_str()
      ->type_name(std::string(type_name))
      ->check(quiet(host_port()));
}

}  // namespace fib::cli
