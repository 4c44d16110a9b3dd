// Command-line pieces both programs share (CLI11 is used by the mains only).
#pragma once

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
// --version, 2 for bad usage), or -1 to carry on.
inline int parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
}

}  // namespace fib::cli
