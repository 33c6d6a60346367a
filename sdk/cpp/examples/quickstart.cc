// The README's example: register a schema once, then send records with keys and attributes.
//   quickstart [bootstrap] [registry-url]
#include <iostream>

#include "refinery/producer.h"

int main(int argc, char** argv) {
  refinery::ProducerConfig config;
  config.bootstrap_servers = argc > 1 ? argv[1] : "127.0.0.1:9092";
  config.registry.url = argc > 2 ? argv[2] : "http://127.0.0.1:8081";
  config.env = "dev";
  config.source = "game-server";
  try {
    refinery::RegistryClient registry(config.registry);
    registry.register_schema("1234", "crash_report", "JSON", R"({"type": "object"})", 1);  // once, explicitly

    refinery::Producer producer(config);
    refinery::SendOptions options;
    options.key = "match-42";  // one match's events stay in order (murmur2, as every Refinery SDK)
    options.attributes["platform"] = "pc";
    options.format = "json";   // the bytes are JSON; "raw" (the default) for bytes in any registered format
    options.on_delivery = [](const refinery::DeliveryReport& report) {
      if (!report.ok()) std::cerr << "not delivered: " << report.message_id << ": " << report.error << "\n";
    };
    producer.send("1234", "crash_report", 1, R"({"reason": "segfault"})", options);
    producer.flush(10000);
  } catch (const refinery::Error& error) {
    std::cerr << "refinery: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
