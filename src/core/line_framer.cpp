#include "fib/core/line_framer.h"

#include <cassert>
#include <cstring>

namespace fib {

namespace {

std::string_view drop_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

}  // namespace

std::span<char> LineFramer::free_space() {
  if (begin_ != 0) {
    std::memmove(data(), data() + begin_, end_ - begin_);
    end_ -= begin_;
    scan_ -= begin_;
    begin_ = 0;
  }
  if (end_ == capacity() && !large_) {
    // One line has outgrown the small buffer: a long line, or junk.
    large_ = std::make_unique_for_overwrite<char[]>(max_line_ + 1);
    std::memcpy(large_.get(), small_, end_);
  }
  return {data() + end_, capacity() - end_};
}

void LineFramer::commit(std::size_t n) { end_ += n; }

std::optional<std::string_view> LineFramer::next_line() {
  while (scan_ < end_) {
    const void* found = std::memchr(data() + scan_, '\n', end_ - scan_);
    if (found == nullptr) {
      scan_ = end_;
      break;
    }
    const std::size_t newline = static_cast<const char*>(found) - data();
    seen_newline_ = true;
    const std::string_view line = drop_cr({data() + begin_, newline - begin_});
    begin_ = scan_ = newline + 1;
    if (!line.empty()) return line;
  }
  return std::nullopt;
}

void LineFramer::restart(bool seen_newline) {
  assert(!has_partial());
  begin_ = end_ = scan_ = 0;
  seen_newline_ = seen_newline;
  large_.reset();
}

std::string_view LineFramer::take_partial() {
  const std::string_view rest{data() + begin_, end_ - begin_};
  begin_ = scan_ = end_;
  return drop_cr(rest);
}

}  // namespace fib
