// The producer without a broker or registry: what it refuses before queueing (config, input, schema,
// size, protobuf type), the bounded queue (QueueFullError naming the broker problem), and delivery
// failures reaching every callback with the record's message id.
#include <mutex>

#include "support.h"

using namespace refinery;

static const char* kKillAvro =
    R"({"type": "record", "name": "Kill", "namespace": "vectors", "fields": [{"name": "match_id", "type": "string"}, {"name": "kills", "type": "int"}]})";
static const char* kKillProto = "syntax = \"proto3\";\npackage vectors;\nmessage Kill {\n  string match_id = 1;\n  int32 kills = 2;\n}\n";
static const char* kOtherProto = "syntax = \"proto3\";\n// message Fake {}\npackage other;\nmessage Kill { string match_id = 1; }\n";

int main() {
  auto schemas = std::make_shared<test::FixedSchemas>();
  schemas->add("1234", "kill", 1, {7, "AVRO", kKillAvro, 1, "1234.kill-value"});
  schemas->add("1234", "proto", 1, {8, "PROTOBUF", kKillProto, 1, "1234.proto-value"});
  schemas->add("1234", "other", 1, {9, "PROTOBUF", kOtherProto, 1, "1234.other-value"});
  ProducerConfig config;
  config.bootstrap_servers = "127.0.0.1:1";  // nothing listens: every delivery fails
  config.create_topics = false;
  config.queue_max_messages = 3;
  config.block_timeout_ms = 300;
  config.delivery_timeout_ms = 1500;
  config.producer_id = "offline-test";

  CHECK_THROWS(ConfigError, "acks=1", {
    ProducerConfig weak = config;
    weak.kafka_overrides["acks"] = "1";
    Producer p(weak, schemas);
  });
  CHECK_THROWS(ConfigError, "env 'pr.od'", {
    ProducerConfig bad = config;
    bad.env = "pr.od";
    Producer p(bad, schemas);
  });
  CHECK_THROWS(ConfigError, "no.such.property", {
    ProducerConfig bad = config;
    bad.kafka_overrides["no.such.property"] = "1";
    Producer p(bad, schemas);
  });

  Producer producer(config, schemas);
  SendOptions bad_attribute;
  bad_attribute.attributes["plat form"] = "pc";
  SendOptions json_format;
  json_format.format = "json";
  SendOptions wrong_id;
  wrong_id.schema_id = 70;
  CHECK_THROWS(InvalidInputError, "title '12.34'", producer.send("12.34", "kill", 1, "x"));
  CHECK_THROWS(InvalidInputError, "version must be >= 1", producer.send("1234", "kill", 0, "x"));
  CHECK_THROWS(SchemaNotRegisteredError, "nope", producer.send("1234", "nope", 1, "x"));
  CHECK_THROWS(InvalidInputError, "attribute name 'plat form'", producer.send("1234", "kill", 1, "x", bad_attribute));
  CHECK_THROWS(InvalidInputError, "does not fit schema id 7 (AVRO)", producer.send("1234", "kill", 1, "x", json_format));
  CHECK_THROWS(InvalidInputError, "is schema id 7", producer.send("1234", "kill", 1, "x", wrong_id));
  CHECK_THROWS(InvalidInputError, "limit is 1000000", producer.send("1234", "kill", 1, std::string(999800, 'x')));
  vectors::Kill kill;
  kill.set_match_id("m-1");
  kill.set_kills(1);
  CHECK_THROWS(InvalidInputError, "schema id 7 is AVRO", producer.send("1234", "kill", 1, kill));
  CHECK_THROWS(InvalidInputError, "not the registered type other.Kill", producer.send("1234", "other", 1, kill));
  CHECK_EQ(producer.stats().queued, 0u);

  std::mutex mutex;
  std::vector<DeliveryReport> reports;
  SendOptions options;
  options.key = "m-1";
  options.on_delivery = [&](const DeliveryReport& report) {
    std::lock_guard<std::mutex> lock(mutex);
    reports.push_back(report);
  };
  std::vector<std::string> ids;
  ids.push_back(producer.send("1234", "proto", 1, kill, options));  // a protobuf message of the schema
  ids.push_back(producer.send("1234", "kill", 1, std::string("\x06m-1\x02", 5), options));
  SendOptions avro = options;
  avro.format = "avro";
  ids.push_back(producer.send("1234", "kill", 1, std::string("\x06m-2\x02", 5), avro));
  CHECK_EQ(producer.stats().queued, 3u);
  CHECK_THROWS(QueueFullError, "send queue full", producer.send("1234", "kill", 1, "x", options));

  producer.flush(10000);  // every record fails after delivery_timeout_ms
  std::lock_guard<std::mutex> lock(mutex);
  CHECK_EQ(reports.size(), 3u);
  for (const auto& report : reports) {
    CHECK(!report.ok());
    CHECK(report.error.find("timed out") != std::string::npos);
    CHECK(std::find(ids.begin(), ids.end(), report.message_id) != ids.end());
    CHECK_EQ(report.topic, std::string("dev.telemetry.ingest.all-v1"));
  }
  CHECK_EQ(producer.stats().failed, 3u);
  CHECK(!producer.broker_problem().empty());
  return test::finish("producer_offline");
}
