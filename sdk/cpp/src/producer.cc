#include "refinery/producer.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <climits>
#include <thread>

namespace refinery {

namespace {

using Clock = std::chrono::steady_clock;

const char* schema_type_of_format(const std::string& format) {
  if (format == "avro") return "AVRO";
  if (format == "json") return "JSON";
  if (format == "protobuf") return "PROTOBUF";
  return nullptr;  // raw fits any registered type
}

// What a partition answers while its leader has not created it yet (or the metadata has not caught up).
bool not_there_yet(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_REPLICA_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
    case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
      return true;
    default:
      return false;
  }
}

// Waits until every partition of `topic` answers a ListOffsets at its leader; returns "" then, or why not
// at the deadline. CreateTopics answers before the leaders hold the partitions' logs, and an idempotent
// producer writing in that window can lose records without an error: its first request fails and is
// queued again, a later request reaches the new log first and is accepted at a sequence above 0 (the
// broker has no state for the producer there), and librdkafka then counts the failed one as delivered
// (its implicit ack). The same wait as common/kafka_admin.py's wait_writable.
std::string wait_writable(rd_kafka_t* rk, const std::string& topic, int timeout_ms) {
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string last = "no answer";
  int partitions = -1;
  int answered = 0;  // partitions [0, answered) answered
  while (Clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    const int round_ms = static_cast<int>(std::max<long long>(1, std::min<long long>(left, 5000)));
    if (partitions < 0) {  // the count first: a topic found existing may have any
      rd_kafka_topic_t* handle = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
      const rd_kafka_metadata_t* metadata = nullptr;
      rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, handle, &metadata, round_ms);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR && metadata->topic_cnt == 1) {
        err = metadata->topics[0].err;
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR && metadata->topics[0].partition_cnt > 0) {
          partitions = metadata->topics[0].partition_cnt;
        }
      }
      if (metadata != nullptr) rd_kafka_metadata_destroy(metadata);
      rd_kafka_topic_destroy(handle);
      if (partitions < 0) {
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR && !not_there_yet(err)) return "";  // cannot look: do not wait
        last = err == RD_KAFKA_RESP_ERR_NO_ERROR ? "no partitions listed yet" : rd_kafka_err2str(err);
      }
    }
    while (partitions >= 0 && answered < partitions) {
      int64_t low = 0, high = 0;
      rd_kafka_resp_err_t err =
          rd_kafka_query_watermark_offsets(rk, topic.c_str(), answered, &low, &high, round_ms);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR && not_there_yet(err)) {
        last = "partition " + std::to_string(answered) + ": " + rd_kafka_err2str(err);
        break;
      }
      ++answered;  // answered, or answers something that is not "not there yet": do not wait for it
    }
    if (partitions >= 0 && answered == partitions) return "";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return last;
}

std::string default_producer_id() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string(host[0] ? host : "unknown-host") + "/" + std::to_string(getpid());
}

// The full name of the first top-level message of a .proto text ("package.Name"), or "".
std::string first_message_type(const std::string& text) {
  std::string package, token;
  int depth = 0;
  bool want_package = false, want_message = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '/' && i + 1 < text.size() && text[i + 1] == '/') {
      while (i < text.size() && text[i] != '\n') ++i;
      continue;
    }
    if (c == '/' && i + 1 < text.size() && text[i + 1] == '*') {
      std::size_t end = text.find("*/", i + 2);
      i = end == std::string::npos ? text.size() : end + 1;
      continue;
    }
    if (c == '"' || c == '\'') {  // skip string literals
      char quote = c;
      for (++i; i < text.size() && text[i] != quote; ++i) {
        if (text[i] == '\\') ++i;
      }
      continue;
    }
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.') {
      token.push_back(c);
      continue;
    }
    if (!token.empty()) {
      if (want_package) {
        package = token;
        want_package = false;
      } else if (want_message) {
        return package.empty() ? token : package + "." + token;
      } else if (depth == 0 && token == "package") {
        want_package = true;
      } else if (depth == 0 && token == "message") {
        want_message = true;
      }
      token.clear();
    }
    if (c == '{') ++depth;
    if (c == '}') --depth;
  }
  return "";
}

}  // namespace

class Producer::Callbacks : public RdKafka::DeliveryReportCb, public RdKafka::EventCb {
 public:
  void dr_cb(RdKafka::Message& message) override {
    auto* callback = static_cast<DeliveryCallback*>(message.msg_opaque());
    if (message.err() == RdKafka::ERR_NO_ERROR) {
      delivered.fetch_add(1, std::memory_order_relaxed);
      if (has_problem.load(std::memory_order_relaxed)) clear();
    } else {
      failed.fetch_add(1, std::memory_order_relaxed);
    }
    if (callback == nullptr) return;
    DeliveryReport report;
    report.topic = message.topic_name();
    report.partition = message.partition();
    report.offset = message.offset();
    report.error_code = static_cast<int>(message.err());
    if (message.err() != RdKafka::ERR_NO_ERROR) {
      report.error = message.errstr();
      std::string cause = problem();
      if (!cause.empty()) report.error += " (last broker error: " + cause + ")";
    }
    if (RdKafka::Headers* headers = message.headers()) {
      RdKafka::Headers::Header id = headers->get_last(contract::kMessageId);
      if (id.err() == RdKafka::ERR_NO_ERROR && id.value() != nullptr) {
        report.message_id.assign(static_cast<const char*>(id.value()), id.value_size());
      }
    }
    try {
      (*callback)(report);
    } catch (...) {  // a throwing callback must not stop delivery reports for everyone else
    }
    delete callback;
  }

  void event_cb(RdKafka::Event& event) override {
    if (event.type() != RdKafka::Event::EVENT_ERROR) return;
    std::lock_guard<std::mutex> lock(mutex_);
    last_error_ = RdKafka::err2str(event.err()) + ": " + event.str();
    has_problem.store(true);
  }

  std::string problem() {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_error_;
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    last_error_.clear();
    has_problem.store(false);
  }

  std::atomic<uint64_t> queued{0}, delivered{0}, failed{0};
  std::atomic<bool> has_problem{false};

 private:
  std::mutex mutex_;
  std::string last_error_;
};

Producer::Producer(ProducerConfig config)
    : Producer(config, std::make_shared<RegistryClient>(config.registry)) {}

Producer::Producer(ProducerConfig config, std::shared_ptr<SchemaSource> schemas)
    : config_(std::move(config)), schemas_(std::move(schemas)), callbacks_(std::make_unique<Callbacks>()) {
  for (const auto& [part, value] : {std::pair{"env", &config_.env}, std::pair{"source", &config_.source}}) {
    std::string problem = contract::component_problem(part, *value);
    if (!problem.empty()) throw ConfigError(problem);
  }
  if (config_.producer_id.empty()) config_.producer_id = default_producer_id();
  if (!contract::is_utf8(config_.producer_id)) throw ConfigError("producer_id is not valid UTF-8");
  if (config_.partitions < 1) throw ConfigError("partitions must be >= 1");
  std::map<std::string, std::string> properties = {
      {"bootstrap.servers", config_.bootstrap_servers},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"linger.ms", std::to_string(config_.linger_ms)},
      {"compression.type", config_.compression},
      {"queue.buffering.max.messages", std::to_string(config_.queue_max_messages)},
      {"message.timeout.ms", std::to_string(config_.delivery_timeout_ms)},
      {"message.max.bytes", std::to_string(contract::kMaxRecordBytes)},
      // Same key -> same partition as the Java client and the Python SDK: per-key order across languages.
      {"partitioner", contract::kPartitioner},
  };
  for (const auto& [key, value] : config_.kafka_overrides) {
    if (key == "enable.idempotence" && value != "true") {
      throw ConfigError("Kafka override enable.idempotence=" + value + " would weaken delivery guarantees");
    }
    if (key == "acks" && value != "all" && value != "-1") {
      throw ConfigError("Kafka override acks=" + value + " would weaken delivery guarantees");
    }
    properties[key] = value;
  }
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string error;
  for (const auto& [key, value] : properties) {
    if (conf->set(key, value, error) != RdKafka::Conf::CONF_OK) {
      throw ConfigError("invalid Kafka client configuration " + key + "=" + value + ": " + error);
    }
  }
  if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(callbacks_.get()), error) != RdKafka::Conf::CONF_OK ||
      conf->set("event_cb", static_cast<RdKafka::EventCb*>(callbacks_.get()), error) != RdKafka::Conf::CONF_OK) {
    throw ConfigError("cannot set the SDK's callbacks: " + error);
  }
  producer_.reset(RdKafka::Producer::create(conf.get(), error));
  if (!producer_) throw ConfigError("invalid Kafka client configuration: " + error);
  poller_ = std::thread([this] { poll_loop(); });
}

Producer::~Producer() {
  try {
    flush(config_.delivery_timeout_ms);
  } catch (const Error&) {
  }
  // Whatever is left is failed now, so every callback runs (with ERR__PURGE_QUEUE) and nothing leaks.
  producer_->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT);
  stop_.store(true);
  if (poller_.joinable()) poller_.join();
  producer_->poll(0);
  producer_.reset();
}

void Producer::poll_loop() {
  // Serve delivery reports every few milliseconds instead of blocking in poll(): a thread waiting on the
  // queue makes librdkafka signal it for every report batch, which costs more CPU than it saves latency.
  while (!stop_.load(std::memory_order_relaxed)) {
    producer_->poll(0);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

const Schema& Producer::schema_of(const std::string& title, const std::string& category, uint32_t version) {
  // Senders repeat the same (title, category, version) a lot: remember this thread's last answer.
  struct Last {
    const Producer* owner = nullptr;
    std::string title, category;
    uint32_t version = 0;
    const Schema* schema = nullptr;
  };
  thread_local Last last;
  if (last.owner == this && last.version == version && last.title == title && last.category == category) {
    return *last.schema;
  }
  const Schema& schema = lookup_schema(title, category, version);
  last = {this, title, category, version, &schema};
  return schema;
}

const Schema& Producer::lookup_schema(const std::string& title, const std::string& category, uint32_t version) {
  std::string key;
  key.reserve(title.size() + category.size() + 12);
  key.append(title).push_back('\x1f');
  key.append(category).push_back('\x1f');
  key.append(std::to_string(version));
  {
    std::lock_guard<std::mutex> lock(schema_mutex_);
    auto it = schema_cache_.find(key);
    if (it != schema_cache_.end()) return it->second;  // elements of an unordered_map never move
  }
  for (const auto& [part, value] : {std::pair{"title", &title}, std::pair{"category", &category}}) {
    std::string problem = contract::component_problem(part, *value);
    if (!problem.empty()) throw InvalidInputError(problem);
  }
  if (version < 1) throw InvalidInputError("version must be >= 1");
  Schema schema = schemas_->resolve(title, category, version);
  std::lock_guard<std::mutex> lock(schema_mutex_);
  return schema_cache_.emplace(key, std::move(schema)).first->second;
}

const std::string& Producer::ready_topic(const std::string& env, const std::string& source) {
  const bool is_default = env == config_.env && source == config_.source;
  if (is_default) {
    if (const std::string* topic = default_topic_.load(std::memory_order_acquire)) return *topic;
  }
  std::lock_guard<std::mutex> lock(topic_mutex_);
  auto key = std::make_pair(env, source);
  auto it = ready_topics_.find(key);
  if (it != ready_topics_.end()) return it->second;
  for (const auto& [part, value] : {std::pair{"env", &env}, std::pair{"source", &source}}) {
    std::string problem = contract::component_problem(part, *value);
    if (!problem.empty()) throw InvalidInputError(problem);
  }
  const std::string topic = contract::ingest_topic(env, source);
  if (config_.create_topics) {
    rd_kafka_t* rk = producer_->c_ptr();
    char error[512];
    rd_kafka_NewTopic_t* request = rd_kafka_NewTopic_new(topic.c_str(), config_.partitions,
                                                         config_.replication_factor, error, sizeof error);
    if (request == nullptr) throw InvalidInputError("cannot create topic '" + topic + "': " + error);
    rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(options, config_.admin_timeout_ms, error, sizeof error);
    rd_kafka_AdminOptions_set_operation_timeout(options, config_.admin_timeout_ms, error, sizeof error);
    rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &request, 1, options, queue);
    rd_kafka_event_t* event = rd_kafka_queue_poll(queue, config_.admin_timeout_ms + 5000);
    std::string failure;
    bool unavailable = false;
    if (event == nullptr) {
      failure = "no answer";
      unavailable = true;
    } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      failure = rd_kafka_event_error_string(event);
      unavailable = true;
    } else {
      std::size_t count = 0;
      const rd_kafka_topic_result_t** results =
          rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count);
      rd_kafka_resp_err_t err = count ? rd_kafka_topic_result_error(results[0]) : RD_KAFKA_RESP_ERR_NO_ERROR;
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char* text = rd_kafka_topic_result_error_string(results[0]);
        failure = std::string(rd_kafka_err2name(err)) + ": " + (text ? text : rd_kafka_err2str(err));
      }
    }
    if (event != nullptr) rd_kafka_event_destroy(event);
    rd_kafka_queue_destroy(queue);
    rd_kafka_AdminOptions_destroy(options);
    rd_kafka_NewTopic_destroy(request);
    if (failure.empty()) {  // created, or there already: writable only once every partition answers
      std::string not_writable = wait_writable(rk, topic, config_.admin_timeout_ms);
      if (!not_writable.empty()) {
        failure = "its partitions did not become writable within " + std::to_string(config_.admin_timeout_ms) +
                  " ms (" + not_writable + ")";
        unavailable = true;
      }
    }
    if (!failure.empty()) {
      std::string cause = callbacks_->problem();
      std::string message = "could not create topic '" + topic + "': " + failure + (cause.empty() ? "" : " (" + cause + ")");
      if (unavailable) throw BrokerUnavailableError(message);
      throw Error(message);
    }
  }
  const std::string& ready = ready_topics_.emplace(key, topic).first->second;  // std::map nodes never move
  if (is_default) default_topic_.store(&ready, std::memory_order_release);
  return ready;
}

Metadata Producer::metadata_for(const std::string& title, const std::string& category, uint32_t version,
                                const std::string& format, const SendOptions& options, const Schema& schema,
                                const std::string** topic) {
  if (options.schema_id && *options.schema_id != schema.id) {
    throw InvalidInputError("schema id " + std::to_string(*options.schema_id) + " is not the registered one: " +
                            schema.subject + " version " + std::to_string(version) + " is schema id " +
                            std::to_string(schema.id));
  }
  const char* wanted = schema_type_of_format(format);
  if (format != "raw" && (wanted == nullptr || schema.type != wanted)) {
    throw InvalidInputError("payload format '" + format + "' does not fit schema id " + std::to_string(schema.id) +
                            " (" + schema.type + "); use raw, or the format of the registered type");
  }
  for (const auto& [name, value] : options.attributes) {
    std::string problem = contract::attribute_name_problem(name);
    if (!problem.empty()) throw InvalidInputError(problem);
    if (!contract::is_utf8(value)) throw InvalidInputError("attribute '" + name + "' is not valid UTF-8");
  }
  Metadata md;
  md.produced_at_ms = options.produced_at_ms ? *options.produced_at_ms : now_ms();
  if (options.message_id) {
    const std::string& id = *options.message_id;
    if (id.empty() || id.size() > contract::kMaxMessageIdBytes || !contract::is_utf8(id)) {
      throw InvalidInputError("message_id must be 1 to 200 bytes of UTF-8");
    }
    md.message_id = id;
  } else {
    md.message_id = new_message_id(md.produced_at_ms);
  }
  md.env = options.env.empty() ? config_.env : options.env;
  md.source = options.source.empty() ? config_.source : options.source;
  md.title = title;        // checked by schema_of
  md.category = category;  // checked by schema_of
  md.version = version;
  md.schema_id = schema.id;
  md.payload_format = format;
  md.producer = config_.producer_id;
  md.attributes = options.attributes;
  *topic = &ready_topic(md.env, md.source);  // checks env and source
  return md;
}

Record Producer::prepare(const std::string& title, const std::string& category, uint32_t version,
                         std::string_view payload, const SendOptions& options) {
  const std::string format = options.format.empty() ? "raw" : options.format;
  const std::string* topic = nullptr;
  Metadata md = metadata_for(title, category, version, format, options, schema_of(title, category, version), &topic);
  Record record = build_record(md, payload, options.key ? &*options.key : nullptr);
  std::size_t size = record_size(record);
  if (size > contract::kMaxRecordBytes) {
    throw InvalidInputError("record would be " + std::to_string(size) + " bytes; the contract's limit is " +
                            std::to_string(contract::kMaxRecordBytes));
  }
  return record;
}

std::string Producer::send(const std::string& title, const std::string& category, uint32_t version,
                           std::string_view payload, const SendOptions& options) {
  static const std::string raw = "raw";
  const std::string& format = options.format.empty() ? raw : options.format;
  const std::string* topic = nullptr;
  Metadata md = metadata_for(title, category, version, format, options, schema_of(title, category, version), &topic);
  return queue(*topic, md, payload, options);
}

std::string Producer::protobuf_bytes(const Schema& schema, const google::protobuf::Message& payload) {
  const std::string& type = payload.GetDescriptor()->full_name();
  if (schema.type != "PROTOBUF") {
    throw InvalidInputError("a protobuf message (" + type + ") was given but schema id " +
                            std::to_string(schema.id) + " is " + schema.type);
  }
  const std::string checked = std::to_string(schema.id) + ":" + type;
  bool known;
  {
    std::lock_guard<std::mutex> lock(schema_mutex_);
    known = checked_proto_types_.count(checked) != 0;
  }
  if (!known) {
    std::string registered = first_message_type(schema.text);
    if (registered != type) {
      throw InvalidInputError("protobuf message type " + type + " is not the registered type " + registered +
                              " (schema id " + std::to_string(schema.id) + ")");
    }
    std::lock_guard<std::mutex> lock(schema_mutex_);
    checked_proto_types_.insert(checked);
  }
  if (!payload.IsInitialized()) {
    throw InvalidInputError("protobuf message lacks required fields: " + payload.InitializationErrorString());
  }
  std::string bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  payload.SerializeToCodedStream(&coded);
  coded.Trim();
  return bytes;
}

std::string Producer::send(const std::string& title, const std::string& category, uint32_t version,
                           const google::protobuf::Message& payload, const SendOptions& options) {
  static const std::string protobuf = "protobuf";
  const Schema& schema = schema_of(title, category, version);
  std::string bytes = protobuf_bytes(schema, payload);
  const std::string* topic = nullptr;
  Metadata md = metadata_for(title, category, version, protobuf, options, schema, &topic);
  return queue(*topic, md, bytes, options);
}

std::string Producer::queue(const std::string& topic, const Metadata& md, std::string_view payload,
                            const SendOptions& options) {
  const std::string value = encode_envelope(md, payload);
  const std::string* key = options.key ? &*options.key : nullptr;
  RdKafka::Headers* headers = RdKafka::Headers::create();
  std::size_t size = contract::kRecordFramingBytes + (key ? key->size() : 0) + value.size();
  for_each_header(md, [&](std::string_view name, std::string_view data) {
    headers->add(std::string(name), data.data(), data.size());
    size += name.size() + contract::kHeaderFramingBytes + data.size();
  });
  if (size > contract::kMaxRecordBytes) {
    delete headers;
    throw InvalidInputError("record would be " + std::to_string(size) + " bytes (payload " +
                            std::to_string(payload.size()) + ", with envelope, key, headers and framing); the "
                            "contract's limit is " + std::to_string(contract::kMaxRecordBytes));
  }
  auto* opaque = options.on_delivery ? new DeliveryCallback(options.on_delivery) : nullptr;
  std::optional<Clock::time_point> deadline;
  while (true) {
    RdKafka::ErrorCode err = producer_->produce(
        topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(value.data()),
        value.size(), key ? key->data() : nullptr, key ? key->size() : 0, md.produced_at_ms, headers, opaque);
    if (err == RdKafka::ERR_NO_ERROR) {
      callbacks_->queued.fetch_add(1, std::memory_order_relaxed);
      return md.message_id;
    }
    if (err == RdKafka::ERR__QUEUE_FULL) {
      auto now = Clock::now();
      if (!deadline) deadline = now + std::chrono::milliseconds(config_.block_timeout_ms);
      if (now < *deadline) {
        producer_->poll(1);  // serve delivery reports here too: their records free the queue
        continue;
      }
    }
    delete headers;
    delete opaque;
    std::string cause = callbacks_->problem();
    if (err == RdKafka::ERR__QUEUE_FULL) {
      throw QueueFullError("send queue full for " + std::to_string(config_.block_timeout_ms) + " ms (" +
                           std::to_string(producer_->outq_len()) + " records waiting); " +
                           (cause.empty() ? "the broker is slow or unreachable" : "last broker error: " + cause));
    }
    throw DeliveryError("librdkafka refused the record for " + topic + ": " + RdKafka::err2str(err));
  }
}

void Producer::flush(int timeout_ms) {
  producer_->flush(timeout_ms);
  int remaining = producer_->outq_len();
  if (remaining > 0) {
    throw FlushTimeoutError(std::to_string(remaining) + " records still undelivered after " +
                                std::to_string(timeout_ms) + " ms",
                            remaining);
  }
}

int Producer::in_flight() const { return producer_->outq_len(); }

ProducerStats Producer::stats() const {
  return {callbacks_->queued.load(), callbacks_->delivered.load(), callbacks_->failed.load()};
}

std::string Producer::broker_problem() const { return callbacks_->problem(); }

}  // namespace refinery
