// Command-line pieces the programs and the bench tools share, over CLI11:
// validators whose messages say what is wrong and what is accepted, with no
// type labels of CLI11's own in --help, and parsing with exit statuses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

namespace fib::cli {

// An address, checked with the parser the programs use.
CLI::Validator host_port();

// A number written the plain decimal way: digits with an optional sign,
// fraction and exponent ("2", "0.5", "1e3"). NaN, infinities and hexadecimal
// floats ("0x1p1") are not numbers here, whatever strtod makes of them.
std::optional<double> parse_decimal(std::string_view text);

// A floating-point option: a plain decimal number from `low` to `high` (or
// 0, which turns the feature off, when `zero_is_off`).
CLI::Validator decimal_between(double low, double high, std::string_view unit, bool zero_is_off = false);

// A whole number written in decimal digits, with an optional sign. Nothing
// else: no fraction, exponent, hexadecimal or surrounding blanks.
enum class WholeNumber { ok, not_whole, out_of_range };
struct ParsedWhole {
  WholeNumber kind = WholeNumber::not_whole;
  std::uint64_t value = 0;
};
ParsedWhole parse_whole(std::string_view text);

// An unsigned integer option from `low` to `high`. Use with ->transform(),
// not ->check(): the value is rewritten in plain digits ("+010" becomes
// "10"), since CLI11 itself would read a leading 0 as octal. Pair it with
// ->type_name("N") for a clean --help.
CLI::Validator whole_between(std::uint64_t low, std::uint64_t high);

// `validator` without its description, which CLI11 would add to the type
// name in --help (UINT:UINT in [1 - 1024]): the option's help says it.
CLI::Validator quiet(CLI::Validator validator);

// --version ("PROGRAM VERSION") and the address argument, `type_name` in
// --help, checked by host_port().
void add_version_and_address(CLI::App& app, std::string_view program, std::string& address, std::string_view type_name,
                             std::string_view help);

// Parses argv; returns the exit status to leave with (0 after --help or
// --version, 2 for bad usage), or -1 to carry on. An unknown option is
// reported first: CLI11 would check the positional address before it, so
// `fib_server -d 3` would be refused as the bad address "3".
int parse(CLI::App& app, int argc, char** argv);

}  // namespace fib::cli
