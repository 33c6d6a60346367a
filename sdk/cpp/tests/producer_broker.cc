// The producer against the real broker and the real schema registry (REFINERY_KAFKA_BOOTSTRAP_SERVERS,
// REFINERY_REGISTRY_URL; skipped without them): registration and its version rule, records of every
// payload kind read back byte-exact with the contract's headers, each key in its murmur2 partition of a
// 12-partition ingest topic the SDK created, a broker-side delivery error reaching the callback, and a new
// ingest topic writable at every partition once the first send to it returns.
// REFINERY_TEST_ENV / _SOURCE / _TITLE choose the names; REFINERY_TEST_REPORT names a file that gets one
// JSON line per record sent (tests/sdk_cpp/test_cpp_sdk.py routes them through a worker).
#include <librdkafka/rdkafkacpp.h>

#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <set>

#include "envelope.pb.h"
#include "support.h"

using namespace refinery;

static const char* kKillAvro =
    R"({"type": "record", "name": "Kill", "namespace": "vectors", "fields": [{"name": "match_id", "type": "string"}, {"name": "kills", "type": "int"}]})";
static const char* kKillAvroV2 =
    R"({"type": "record", "name": "Kill", "namespace": "vectors", "fields": [{"name": "match_id", "type": "string"}, {"name": "kills", "type": "int"}, {"name": "weapon", "type": "string", "default": ""}]})";
static const char* kKillProto = "syntax = \"proto3\";\npackage vectors;\nmessage Kill {\n  string match_id = 1;\n  int32 kills = 2;\n}\n";
static const char* kPurchaseJson =
    R"({"type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}, "required": ["sku", "qty"]})";

struct Sent {
  std::string category;
  uint32_t version;
  std::string key;
  std::string payload;
  std::string format;
  std::string platform;
  int32_t schema_id;
};

static std::string avro_kill(const std::string& match_id, int kills) {  // Avro binary of vectors.Kill
  std::string out;
  out.push_back(static_cast<char>(match_id.size() * 2));  // zigzag length (short ids)
  out += match_id;
  out.push_back(static_cast<char>(kills * 2));
  return out;
}

int main() {
  const std::string bootstrap = test::env_or("REFINERY_KAFKA_BOOTSTRAP_SERVERS", "");
  const std::string registry_url = test::env_or("REFINERY_REGISTRY_URL", "");
  if (bootstrap.empty() || registry_url.empty()) {
    std::cout << "skipped: set REFINERY_KAFKA_BOOTSTRAP_SERVERS and REFINERY_REGISTRY_URL" << std::endl;
    return 77;
  }
  const std::string suffix = test::unique_suffix();
  const std::string env = test::env_or("REFINERY_TEST_ENV", "prod");
  const std::string source = test::env_or("REFINERY_TEST_SOURCE", "cppsdk" + suffix);
  const std::string title = test::env_or("REFINERY_TEST_TITLE", "t" + suffix);

  // Registration: explicit, and versions come in order.
  auto registry = std::make_shared<RegistryClient>(RegistryConfig{registry_url, 10.0, "", ""});
  Schema kill = registry->register_schema(title, "kill", "AVRO", kKillAvro, 1);
  CHECK_EQ(kill.version, 1u);
  CHECK_EQ(registry->register_schema(title, "kill", "AVRO", kKillAvro, 1).id, kill.id);  // idempotent
  CHECK_THROWS(SchemaVersionError, "version 2, not 3", registry->register_schema(title, "kill", "AVRO", kKillAvroV2, 3));
  CHECK_THROWS(SchemaVersionError, "already version 1", registry->register_schema(title, "kill", "AVRO", kKillAvro, 2));
  Schema proto = registry->register_schema(title, "proto_kill", "PROTOBUF", kKillProto, 1);
  Schema purchase = registry->register_schema(title, "purchase", "JSON", kPurchaseJson, 1);
  CHECK_EQ(registry->resolve(title, "purchase", 1).id, purchase.id);
  CHECK_THROWS(SchemaNotRegisteredError, "register it first", registry->resolve(title, "nothing", 1));

  ProducerConfig config;
  config.bootstrap_servers = bootstrap;
  config.env = env;
  config.source = source;
  config.producer_id = "cpp-sdk-test/" + suffix;
  config.linger_ms = 5;
  std::map<std::string, Sent> sent;  // by message id
  std::map<std::string, DeliveryReport> reports;
  std::mutex mutex;
  {
    Producer producer(config, registry);
    vectors::File file = test::load_vectors();
    for (int i = 0; i < file.keys_size(); ++i) {
      SendOptions options;
      options.key = test::unhex(file.keys(i).key_hex());
      std::string platform = i % 2 ? "pc" : "ps5";
      options.attributes["platform"] = platform;
      options.on_delivery = [&](const DeliveryReport& report) {
        std::lock_guard<std::mutex> lock(mutex);
        reports[report.message_id] = report;
      };
      std::string id;
      Sent record{"kill", 1, *options.key, "", "raw", platform, kill.id};
      switch (i % 4) {
        case 0:
          record.payload = "opaque bytes " + std::to_string(i);
          id = producer.send(title, "kill", 1, record.payload, options);
          break;
        case 1:
          record.payload = avro_kill("m-" + std::to_string(i), i);
          record.format = options.format = "avro";
          id = producer.send(title, "kill", 1, record.payload, options);
          break;
        case 2: {
          vectors::Kill message;
          message.set_match_id("m-" + std::to_string(i));
          message.set_kills(i);
          record = {"proto_kill", 1, *options.key, message.SerializeAsString(), "protobuf", platform, proto.id};
          id = producer.send(title, "proto_kill", 1, message, options);
          break;
        }
        default:
          record = {"purchase", 1, *options.key, R"({"sku":"sword","qty":)" + std::to_string(i) + "}", "json", platform, purchase.id};
          options.format = "json";
          id = producer.send(title, "purchase", 1, record.payload, options);
      }
      sent[id] = record;
    }
    producer.flush(60000);
  }
  CHECK_EQ(reports.size(), sent.size());
  for (const auto& [id, report] : reports) CHECK(report.ok());

  const std::string topic = contract::ingest_topic(env, source);
  CHECK_EQ(test::partition_count(bootstrap, topic), contract::kIngestPartitions);
  std::vector<test::Consumed> consumed = test::consume(bootstrap, topic, sent.size(), 60000);
  std::set<std::string> seen;
  for (const auto& record : consumed) {
    refinery::envelope::v1::Envelope envelope;
    CHECK(envelope.ParseFromString(record.value));
    const auto& meta = envelope.metadata();
    auto it = sent.find(meta.message_id());
    if (it == sent.end()) continue;  // an earlier run's record (REFINERY_TEST_SOURCE reused)
    const Sent& expected = it->second;
    seen.insert(meta.message_id());
    Metadata md;
    md.message_id = meta.message_id();
    md.env = meta.env();
    md.source = meta.source();
    md.title = meta.title();
    md.category = meta.category();
    md.version = meta.version();
    md.schema_id = meta.schema_id();
    md.payload_format = contract::kFormats[meta.payload_format() - 1];
    md.produced_at_ms = meta.produced_at_ms();
    md.producer = meta.producer();
    for (const auto& [name, value] : meta.attributes()) md.attributes[name] = value;
    CHECK_EQ(md.env, env);
    CHECK_EQ(md.source, source);
    CHECK_EQ(md.title, title);
    CHECK_EQ(md.category, expected.category);
    CHECK_EQ(md.schema_id, expected.schema_id);
    CHECK_EQ(md.payload_format, expected.format);
    CHECK_EQ(md.producer, config.producer_id);
    CHECK_EQ(md.attributes.at("platform"), expected.platform);
    CHECK_EQ(envelope.payload(), expected.payload);
    CHECK_EQ(test::hex(record.value), test::hex(encode_envelope(md, expected.payload)));  // canonical bytes
    CHECK(record.headers == envelope_headers(md));                                       // contract headers
    CHECK(record.has_key);
    CHECK_EQ(test::hex(record.key), test::hex(expected.key));
    CHECK_EQ(record.partition, contract::partition_for_key(expected.key));  // murmur2, as the vectors say
    CHECK_EQ(record.partition, reports[md.message_id].partition);
    CHECK_EQ(record.offset, reports[md.message_id].offset);
  }
  CHECK_EQ(seen.size(), sent.size());

  // A delivery error the broker decides (the topic takes at most 1000-byte records) reaches the callback.
  const std::string small = source + "small";
  CHECK(test::create_topic(bootstrap, contract::ingest_topic(env, small), 1, {{"max.message.bytes", "1000"}}));
  {
    ProducerConfig small_config = config;
    small_config.source = small;
    small_config.delivery_timeout_ms = 20000;
    Producer producer(small_config, registry);
    DeliveryReport report;
    SendOptions options;
    options.on_delivery = [&](const DeliveryReport& r) {
      std::lock_guard<std::mutex> lock(mutex);
      report = r;
    };
    std::string incompressible(5000, '\0');  // lz4 would shrink repeated bytes under the limit
    std::mt19937 rng(7);
    for (auto& c : incompressible) c = static_cast<char>(rng() & 0xff);
    std::string id = producer.send(title, "kill", 1, incompressible, options);
    producer.flush(30000);
    std::lock_guard<std::mutex> lock(mutex);
    CHECK(!report.ok());
    CHECK_EQ(report.message_id, id);
    std::cout << "broker refused as expected: " << report.error << std::endl;
    CHECK_EQ(producer.stats().failed, 1u);
  }

  // The first send to a new ingest topic returns only once every partition answers at its leader: the SDK
  // waits after creating the topic, since an idempotent producer writing to a partition whose leader has
  // not created its log yet can lose records without an error (librdkafka's implicit ack).
  {
    const std::string fresh = source + "fresh";
    const std::string fresh_topic = contract::ingest_topic(env, fresh);
    std::string error;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    conf->set("bootstrap.servers", bootstrap, error);
    std::unique_ptr<RdKafka::Producer> probe(RdKafka::Producer::create(conf.get(), error));
    RdKafka::Metadata* metadata = nullptr;  // connected, before the topic exists
    if (probe->metadata(true, nullptr, &metadata, 10000) == RdKafka::ERR_NO_ERROR) delete metadata;
    ProducerConfig fresh_config = config;
    fresh_config.source = fresh;
    Producer producer(fresh_config, registry);
    producer.send(title, "kill", 1, std::string("first record of a new topic"));
    int answering = 0;
    for (int p = 0; p < contract::kIngestPartitions; ++p) {
      int64_t low = 0, high = 0;
      RdKafka::ErrorCode err = probe->query_watermark_offsets(fresh_topic, p, &low, &high, 5000);
      if (err == RdKafka::ERR_NO_ERROR) ++answering;
      else std::cout << fresh_topic << "[" << p << "] not writable yet: " << RdKafka::err2str(err) << std::endl;
    }
    CHECK_EQ(answering, contract::kIngestPartitions);
    producer.flush(30000);
    CHECK_EQ(producer.stats().failed, 0u);
  }

  const std::string report_path = test::env_or("REFINERY_TEST_REPORT", "");
  if (!report_path.empty()) {
    std::ofstream out(report_path);
    for (const auto& [id, record] : sent) {
      out << R"({"message_id": ")" << id << R"(", "env": ")" << env << R"(", "source": ")" << source
          << R"(", "title": ")" << title << R"(", "category": ")" << record.category << R"(", "version": )"
          << record.version << R"(, "platform": ")" << record.platform << "\"}\n";
    }
  }
  return test::finish("producer_broker");
}
