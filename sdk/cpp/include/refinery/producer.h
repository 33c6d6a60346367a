// The Refinery producer SDK for C++: register-before-send, the envelope and headers of the contract
// (docs/contract.md), idempotent acks=all delivery with per-record callbacks and a bounded queue.
//
//   refinery::ProducerConfig config;
//   config.env = "prod";
//   config.source = "game-server";
//   refinery::Producer producer(config);
//   refinery::SendOptions options;
//   options.key = match_id;                         // same key, same partition (murmur2), in order
//   options.on_delivery = [](const refinery::DeliveryReport& r) { if (!r.ok()) log(r.error); };
//   producer.send("1234", "player_killed", 2, kill_message, options);   // a protobuf message
//   producer.send("1234", "crash_report", 1, bytes, options);          // already-serialized bytes
//   producer.flush(10000);
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "refinery/contract.h"
#include "refinery/envelope.h"
#include "refinery/errors.h"
#include "refinery/registry.h"

namespace RdKafka {
class Producer;
}
namespace google::protobuf {
class Message;
}

namespace refinery {

struct ProducerConfig {
  std::string bootstrap_servers = "127.0.0.1:9092";
  RegistryConfig registry;            // used unless a SchemaSource is given
  std::string env = "dev";
  std::string source = "telemetry";
  std::string producer_id;            // written to every envelope; default "{hostname}/{pid}"
  int partitions = contract::kIngestPartitions;  // ingest topics are created with this many
  int replication_factor = 1;
  bool create_topics = true;          // false: ingest topics are provisioned by operators
  int admin_timeout_ms = 15000;       // topic creation, then as long again for its partitions to answer
  int linger_ms = 20;
  std::string compression = "lz4";
  int queue_max_messages = 100000;    // the bounded local queue
  int delivery_timeout_ms = 120000;   // librdkafka message.timeout.ms: then the callback gets the error
  int block_timeout_ms = 10000;       // how long send() waits on a full queue before QueueFullError
  // Any other librdkafka property (security.protocol, sasl.*, ...). enable.idempotence and acks cannot be
  // weakened, and partitioner stays murmur2_random unless you override it knowingly.
  std::map<std::string, std::string> kafka_overrides;
};

struct DeliveryReport {
  std::string message_id;
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  int error_code = 0;  // RdKafka::ErrorCode; 0 = delivered
  std::string error;   // librdkafka's text, with the last client-level problem when there was one
  bool ok() const { return error_code == 0; }
};
using DeliveryCallback = std::function<void(const DeliveryReport&)>;

struct SendOptions {
  std::optional<std::string> key;               // record key bytes (UTF-8 for text keys)
  std::map<std::string, std::string> attributes;
  // For bytes payloads: "raw" (default: bytes in the registered format, opaque) or the serialization
  // they are in (avro, json, protobuf), which must fit the registered schema type.
  std::string format = "raw";
  std::optional<int32_t> schema_id;             // when given, must be the registered schema's id
  // Called once per record from the SDK's poll thread (or from send() while it waits on a full queue);
  // keep it short and thread-safe.
  DeliveryCallback on_delivery;
  std::string env;                              // override the config's env / source for this record
  std::string source;
  std::optional<std::string> message_id;        // replays and tests only: default a fresh UUIDv7
  std::optional<int64_t> produced_at_ms;        // replays and tests only: default now
};

struct ProducerStats {
  uint64_t queued = 0;
  uint64_t delivered = 0;
  uint64_t failed = 0;
};

class Producer {
 public:
  explicit Producer(ProducerConfig config);
  Producer(ProducerConfig config, std::shared_ptr<SchemaSource> schemas);
  ~Producer();  // flushes for up to delivery_timeout_ms, then stops
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Validate, envelope and queue one payload; returns its message id. Throws before queueing anything
  // on invalid input (InvalidInputError and subclasses), a missing schema (SchemaNotRegisteredError),
  // an unreachable registry or broker, or a queue full for block_timeout_ms (QueueFullError).
  std::string send(const std::string& title, const std::string& category, uint32_t version,
                   std::string_view payload, const SendOptions& options = {});
  // A protobuf message of the registered PROTOBUF schema's first message type (format "protobuf").
  std::string send(const std::string& title, const std::string& category, uint32_t version,
                   const google::protobuf::Message& payload, const SendOptions& options = {});

  // Everything send() does up to queueing: the record it would produce (the ingest topic is created).
  Record prepare(const std::string& title, const std::string& category, uint32_t version,
                 std::string_view payload, const SendOptions& options = {});

  // Wait until every queued record is delivered or failed; FlushTimeoutError if time runs out.
  void flush(int timeout_ms);
  int in_flight() const;
  ProducerStats stats() const;
  // The last client-level error librdkafka reported (authentication, all brokers down), or "".
  std::string broker_problem() const;
  const ProducerConfig& config() const { return config_; }
  RdKafka::Producer* client() { return producer_.get(); }

 private:
  class Callbacks;
  // The record's metadata and ingest topic (created if needed); checks everything send() checks.
  Metadata metadata_for(const std::string& title, const std::string& category, uint32_t version,
                        const std::string& format, const SendOptions& options, const Schema& schema,
                        const std::string** topic);
  std::string queue(const std::string& topic, const Metadata& md, std::string_view payload,
                    const SendOptions& options);
  const Schema& schema_of(const std::string& title, const std::string& category, uint32_t version);
  const Schema& lookup_schema(const std::string& title, const std::string& category, uint32_t version);
  const std::string& ready_topic(const std::string& env, const std::string& source);
  std::string protobuf_bytes(const Schema& schema, const google::protobuf::Message& payload);
  void poll_loop();

  ProducerConfig config_;
  std::shared_ptr<SchemaSource> schemas_;
  std::unique_ptr<Callbacks> callbacks_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::mutex schema_mutex_;
  std::unordered_map<std::string, Schema> schema_cache_;
  std::mutex topic_mutex_;
  std::map<std::pair<std::string, std::string>, std::string> ready_topics_;  // (env, source) -> topic
  std::atomic<const std::string*> default_topic_{nullptr};  // the config's, once it exists
  std::set<std::string> checked_proto_types_;  // "{schema id}:{message type}" already compared
  std::atomic<bool> stop_{false};
  std::thread poller_;
};

}  // namespace refinery
