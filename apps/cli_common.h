// Command-line pieces both programs share (CLI11 is used by the mains only).
#pragma once

#include <cctype>
#include <stdexcept>
#include <string>

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
    "HOST:PORT");

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
      if (app.get_option_no_throw(name) == nullptr) throw CLI::ExtrasError({name});
    }
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
}

}  // namespace fib::cli
