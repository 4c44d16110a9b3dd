// What a scrape of --metrics reads: the server's statistics as Prometheus
// metric families (the names and help texts docs/operations.md lists).
#pragma once

#include <memory>

namespace prometheus {
class Collectable;
}  // namespace prometheus

namespace fib {

class Server;

std::shared_ptr<prometheus::Collectable> make_server_collector(const Server& server);

}  // namespace fib
