#include "fib/perf/report.h"

#include <fmt/format.h>

#include "fib/core/address.h"
#include "fib/core/plural.h"
#include "fib/perf/warnings.h"

namespace fib {

namespace {

std::string latency_line(const Histogram& h) {
  return fmt::format("p50 {}  p90 {}  p99 {}  p99.9 {}  max {}", format_latency(h.percentile(50)),
                     format_latency(h.percentile(90)), format_latency(h.percentile(99)),
                     format_latency(h.percentile(99.9)), format_latency(h.max()));
}

std::string latency_json(const Histogram& h) {
  const auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
  return fmt::format(R"({{"p50":{:.1f},"p90":{:.1f},"p99":{:.1f},"p999":{:.1f},"max":{:.1f},"mean":{:.1f}}})",
                     us(h.percentile(50)), us(h.percentile(90)), us(h.percentile(99)), us(h.percentile(99.9)),
                     us(h.max()), h.mean() / 1000.0);
}

// JSON string contents: the warnings are our own text, but escape anyway.
std::string json_escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out += c;
    }
  }
  return out;
}

std::string describe_load(const LoadConfig& c) {
  std::string mode = c.rate ? fmt::format("open loop at {:g} req/s", *c.rate) : "closed loop";
  // Every limit in force; the first reached ends the run.
  std::string stop = c.duration && c.requests ? fmt::format("{:g} s or {} request{}, whichever comes first",
                                                            to_seconds(*c.duration), *c.requests, plural_s(*c.requests))
                     : c.duration             ? fmt::format("{:g} s", to_seconds(*c.duration))
                     : c.requests             ? fmt::format("{} request{}", *c.requests, plural_s(*c.requests))
                                              : std::string("until interrupted");
  if (c.warmup.count() > 0) stop += fmt::format(" after {:g} s of warm-up", to_seconds(c.warmup));
  return fmt::format("{}, {} connection{}, fib({}), {}, pipeline {}, {}; a request unanswered for {:g} s is an error",
                     format_host_port(c.target.host, c.target.port), c.connections, plural_s(c.connections), c.n, mode,
                     c.pipeline, stop, to_seconds(c.timeout));
}

// "1.50 s into the run for 0.80 s", "3.10 s into the run for the remaining 0.90 s".
std::string describe_outage(const Outage& o) {
  return fmt::format("{:.2f} s into the run for {}{:.2f} s", to_seconds(o.at), o.to_end ? "the remaining " : "",
                     to_seconds(o.length));
}

std::string outage_line(const Summary& s) {
  std::string out;
  for (const Outage& o : s.outages) out += (out.empty() ? "" : "; ") + describe_outage(o);
  if (s.outage_count > s.outages.size()) {
    const std::uint64_t more = s.outage_count - s.outages.size();
    out += fmt::format("; {} more, {:.2f} s not answering in all", more, to_seconds(s.not_answering));
  }
  return fmt::format("  {:<13} not answering from {}\n", s.outage_count == 1 ? "outage" : "outages", out);
}

std::string outages_json(const Summary& s) {
  std::string list;
  for (const Outage& o : s.outages) {
    list += fmt::format(R"({}{{"at_s":{:.3f},"for_s":{:.3f},"to_end":{}}})", list.empty() ? "" : ",", to_seconds(o.at),
                        to_seconds(o.length), o.to_end);
  }
  return fmt::format(R"("outages":[{}],"outage_count":{},"not_answering_seconds":{:.3f},)", list, s.outage_count,
                     to_seconds(s.not_answering));
}

}  // namespace

std::string format_latency(std::uint64_t ns) {
  const auto v = static_cast<double>(ns);
  if (ns < 1'000) return fmt::format("{}ns", ns);
  if (ns < 1'000'000) return fmt::format("{:.1f}us", v / 1e3);
  if (ns < 1'000'000'000) return fmt::format("{:.2f}ms", v / 1e6);
  return fmt::format("{:.2f}s", v / 1e9);
}

std::string format_interval(const IntervalReport& r) {
  const double rps = r.length.count() > 0 ? static_cast<double>(r.requests) / to_seconds(r.length) : 0;
  return fmt::format("{:.0f} reqs/s  p50 {}  p99 {}  errors {}", rps, format_latency(r.p50_ns),
                     format_latency(r.p99_ns), r.errors);
}

std::string format_summary(const Summary& s) {
  const ErrorCounts& e = s.errors;
  std::string out = fmt::format("fib_perf: {}\n", describe_load(s.config));
  if (s.outage_count == 0) {
    out += fmt::format("  requests      {} in {:.2f} s: {:.1f} req/s\n", s.requests, to_seconds(s.measured), s.rps());
  } else {
    // The headline rate leaves out the time the server was not answering.
    out += fmt::format(
        "  requests      {} in {:.2f} s: {:.1f} req/s over the {:.2f} s the server answered ({:.1f} "
        "req/s over all {:.2f} s)\n",
        s.requests, to_seconds(s.measured), s.rps(), to_seconds(s.answering()), s.rps_whole_run(),
        to_seconds(s.measured));
    out += outage_line(s);
  }
  out += fmt::format("  latency       {}\n", latency_line(s.latency));
  if (s.uncorrected) {
    out += fmt::format("  (uncorrected) {}\n", latency_line(*s.uncorrected));
    out +=
        "                latency counts from each request's scheduled time; the uncorrected line from when\n"
        "                it was actually sent\n";
    out += fmt::format("  schedule      {} of {} due requests sent, {} more than 1 ms late\n", s.sent, s.scheduled,
                       s.sent_late);
  }
  out += fmt::format("  connections   min {:.1f} req/s, max {:.1f} req/s", s.min_connection_rps, s.max_connection_rps);
  if (s.starved > 0) out += fmt::format("; {} of {} got no answer", s.starved, s.config.connections);
  out += "\n";
  out += fmt::format("  errors        {} (connect {}, reset or EOF {}, timeout {}, error reply {}, wrong answer {})\n",
                     e.total(), e.connect, e.reset_or_eof, e.timeout, e.error_reply, e.wrong_answer);
  for (const std::string& reply : s.unexpected_replies) out += fmt::format("  server said   {:?}\n", reply);
  out += fmt::format("  in flight     {} when it stopped", s.in_flight);
  if (s.unsent > 0) out += fmt::format("; {} due but never sent", s.unsent);
  out += "\n";
  out += fmt::format("  client CPU    user {:.2f} s, system {:.2f} s; busiest thread {:.0f}% of the run; {} cores\n",
                     to_seconds(s.cpu_user), to_seconds(s.cpu_system), s.busiest_thread_cpu * 100, s.cores);
  for (const std::string& w : s.warnings) out += fmt::format("warning: {}\n", w);
  return out;
}

std::string format_summary_json(const Summary& s) {
  const ErrorCounts& e = s.errors;
  std::string warnings;
  for (const std::string& w : s.warnings)
    warnings += fmt::format("{}\"{}\"", warnings.empty() ? "" : ",", json_escape(w));
  std::string out = "{";
  out += fmt::format(R"("target":"{}","connections":{},"n":{},"pipeline":{},)",
                     json_escape(format_host_port(s.config.target.host, s.config.target.port)), s.config.connections,
                     s.config.n, s.config.pipeline);
  out += s.config.rate ? fmt::format(R"("rate":{},)", *s.config.rate) : std::string(R"("rate":null,)");
  out += fmt::format(R"("seconds":{:.3f},"requests":{},"rps":{:.1f},)", to_seconds(s.measured), s.requests, s.rps());
  out += fmt::format(R"("answering_seconds":{:.3f},"rps_whole_run":{:.1f},)", to_seconds(s.answering()),
                     s.rps_whole_run());
  out += outages_json(s);
  out += fmt::format(R"("errors":{},"error_replies":{},"wrong_answers":{},)", e.total(), e.error_reply, e.wrong_answer);
  out += fmt::format(
      R"("errors_by_kind":{{"connect":{},"reset_or_eof":{},"timeout":{},"error_reply":{},"wrong_answer":{}}},)",
      e.connect, e.reset_or_eof, e.timeout, e.error_reply, e.wrong_answer);
  std::string replies;
  for (const std::string& reply : s.unexpected_replies)
    replies += fmt::format("{}\"{}\"", replies.empty() ? "" : ",", json_escape(reply));
  out += fmt::format(R"("unexpected_replies":[{}],)", replies);
  out += fmt::format(R"("latency_us":{},)", latency_json(s.latency));
  if (s.uncorrected) {
    out += fmt::format(R"("uncorrected_latency_us":{},)", latency_json(*s.uncorrected));
    out += fmt::format(R"("scheduled":{},"sent":{},"sent_late":{},"rate_held":{},)", s.scheduled, s.sent, s.sent_late,
                       rate_held(s));
  }
  out +=
      fmt::format(R"("per_connection_rps":{{"min":{:.1f},"max":{:.1f}}},)", s.min_connection_rps, s.max_connection_rps);
  out += fmt::format(R"("starved_connections":{},)", s.starved);
  out += fmt::format(R"("in_flight":{},"unsent":{},"gave_up":{},)", s.in_flight, s.unsent, s.gave_up);
  out += fmt::format(R"("client_cpu":{{"user_s":{:.3f},"system_s":{:.3f},"busiest_thread":{:.3f},"cores":{}}},)",
                     to_seconds(s.cpu_user), to_seconds(s.cpu_system), s.busiest_thread_cpu, s.cores);
  out += fmt::format(R"("warnings":[{}]}})", warnings);
  return out;
}

}  // namespace fib
