// Whole-number options (CLI11 is used by the mains only), in the style of
// decimal_between in cli_common.h: a message that says what is wrong and
// what is accepted, and no type label of CLI11's own in --help.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

namespace fib::cli {

// A whole number written in decimal digits, with an optional sign. Nothing
// else: no fraction, exponent, hexadecimal or surrounding blanks.
enum class WholeNumber { ok, not_whole, out_of_range };
struct ParsedWhole {
  WholeNumber kind = WholeNumber::not_whole;
  std::uint64_t value = 0;
};
inline ParsedWhole parse_whole(std::string_view text) {
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

// An unsigned integer option from `low` to `high`. Use with ->transform(),
// not ->check(): the value is rewritten in plain digits ("+010" becomes
// "10"), since CLI11 itself would read a leading 0 as octal. Pair it with
// ->type_name("N") for a clean --help.
inline CLI::Validator whole_between(std::uint64_t low, std::uint64_t high) {
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

}  // namespace fib::cli
