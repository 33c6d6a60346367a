#include "support.h"

#include <google/protobuf/util/json_util.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <random>

namespace test {

int failures = 0;

int finish(const char* name) {
  if (failures == 0) {
    std::cout << name << ": all checks passed" << std::endl;
    return 0;
  }
  std::cerr << name << ": " << failures << " check(s) failed" << std::endl;
  return 1;
}

std::string hex(const std::string& bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 0xf]);
  }
  return out;
}

std::string unhex(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) out.push_back(static_cast<char>(std::stoi(text.substr(i, 2), nullptr, 16)));
  return out;
}

vectors::File load_vectors() {
  std::ifstream in(REFINERY_VECTORS_PATH);
  std::stringstream text;
  text << in.rdbuf();
  vectors::File file;
  auto status = google::protobuf::util::JsonStringToMessage(text.str(), &file);  // strict: unknown fields fail
  if (!status.ok() || file.envelopes_size() == 0) {
    std::cerr << "cannot read " << REFINERY_VECTORS_PATH << ": " << status.ToString() << std::endl;
    std::exit(1);
  }
  return file;
}

refinery::Metadata metadata_of(const vectors::Meta& meta) {
  refinery::Metadata md;
  md.message_id = meta.message_id();
  md.env = meta.env();
  md.source = meta.source();
  md.title = meta.title();
  md.category = meta.category();
  md.version = meta.version();
  md.schema_id = meta.schema_id();
  md.payload_format = meta.payload_format();
  md.produced_at_ms = meta.produced_at_ms();
  md.producer = meta.producer();
  for (const auto& [name, value] : meta.attributes()) md.attributes[name] = value;
  return md;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

std::string unique_suffix() {
  std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(getpid()) + "_" + std::to_string(rng() % 1000000);
}

void FixedSchemas::add(const std::string& title, const std::string& category, uint32_t version,
                       refinery::Schema schema) {
  schemas_[title + "/" + category + "/" + std::to_string(version)] = std::move(schema);
}

refinery::Schema FixedSchemas::resolve(const std::string& title, const std::string& category, uint32_t version) {
  auto it = schemas_.find(title + "/" + category + "/" + std::to_string(version));
  if (it == schemas_.end()) throw refinery::SchemaNotRegisteredError("no fixed schema for " + title + "/" + category);
  return it->second;
}

std::vector<Consumed> consume(const std::string& bootstrap, const std::string& topic, std::size_t expected,
                              int timeout_ms) {
  std::string error;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, error);
  conf->set("group.id", "refinery-sdk-test-" + unique_suffix(), error);  // unused: we assign
  conf->set("enable.auto.commit", "false", error);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), error));
  std::vector<RdKafka::TopicPartition*> partitions;
  for (int p = 0, n = partition_count(bootstrap, topic); p < n; ++p) {
    partitions.push_back(RdKafka::TopicPartition::create(topic, p, RdKafka::Topic::OFFSET_BEGINNING));
  }
  consumer->assign(partitions);
  RdKafka::TopicPartition::destroy(partitions);
  std::vector<Consumed> out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (out.size() < expected && std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> message(consumer->consume(200));
    if (message->err() != RdKafka::ERR_NO_ERROR) continue;
    Consumed record;
    record.topic = message->topic_name();
    record.partition = message->partition();
    record.offset = message->offset();
    record.has_key = message->key_pointer() != nullptr;
    if (record.has_key) record.key.assign(static_cast<const char*>(message->key_pointer()), message->key_len());
    record.value.assign(static_cast<const char*>(message->payload()), message->len());
    if (RdKafka::Headers* headers = message->headers()) {
      for (const auto& header : headers->get_all()) {
        const char* value = static_cast<const char*>(header.value());
        record.headers.emplace_back(header.key(), value ? std::string(value, header.value_size()) : std::string());
      }
    }
    out.push_back(std::move(record));
  }
  consumer->close();
  return out;
}

int partition_count(const std::string& bootstrap, const std::string& topic) {
  std::string error;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, error);
  std::unique_ptr<RdKafka::Producer> client(RdKafka::Producer::create(conf.get(), error));
  std::unique_ptr<RdKafka::Topic> handle(RdKafka::Topic::create(client.get(), topic, nullptr, error));
  RdKafka::Metadata* metadata = nullptr;
  if (client->metadata(false, handle.get(), &metadata, 10000) != RdKafka::ERR_NO_ERROR) return 0;
  int count = 0;
  for (const auto* t : *metadata->topics()) {
    if (t->topic() == topic && t->err() == RdKafka::ERR_NO_ERROR) count = static_cast<int>(t->partitions()->size());
  }
  delete metadata;
  return count;
}

bool create_topic(const std::string& bootstrap, const std::string& topic, int partitions,
                  const std::map<std::string, std::string>& configs) {
  std::string error;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, error);
  std::unique_ptr<RdKafka::Producer> client(RdKafka::Producer::create(conf.get(), error));
  rd_kafka_t* rk = client->c_ptr();
  char text[512];
  rd_kafka_NewTopic_t* request = rd_kafka_NewTopic_new(topic.c_str(), partitions, 1, text, sizeof text);
  for (const auto& [name, value] : configs) rd_kafka_NewTopic_set_config(request, name.c_str(), value.c_str());
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &request, 1, nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 30000);
  bool ok = event != nullptr && rd_kafka_event_error(event) == RD_KAFKA_RESP_ERR_NO_ERROR;
  if (ok) {
    std::size_t count = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count);
    rd_kafka_resp_err_t err = count ? rd_kafka_topic_result_error(results[0]) : RD_KAFKA_RESP_ERR_NO_ERROR;
    ok = err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS;
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy(request);
  return ok;
}

}  // namespace test
