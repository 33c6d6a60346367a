// The envelope contract (docs/contract.md) as C++: header names, value rules, the size limit and the
// key partitioner. Mirrors common/contract.py; tests/vectors/envelopes.json checks that both agree.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace refinery {
namespace contract {

inline constexpr const char* kContractVersion = "1";

// Header names (CloudEvents Kafka binding, binary mode).
inline constexpr const char* kSpecVersion = "ce_specversion";
inline constexpr const char* kContentType = "content-type";
inline constexpr const char* kMessageId = "ce_id";
inline constexpr const char* kEnv = "ce_env";
inline constexpr const char* kSource = "ce_source";
inline constexpr const char* kTitle = "ce_title";
inline constexpr const char* kCategory = "ce_type";
inline constexpr const char* kVersion = "ce_version";
inline constexpr const char* kSchemaId = "ce_schemaid";
inline constexpr const char* kFormat = "ce_format";
inline constexpr const char* kTime = "ce_time";
inline constexpr const char* kProducer = "ce_producer";
inline constexpr const char* kAttributePrefix = "attr.";
inline constexpr const char* kSpecVersionValue = "1.0";
inline constexpr const char* kContentTypeValue =
    "application/x-protobuf; messageType=refinery.envelope.v1.Envelope";

inline constexpr std::size_t kMaxMessageIdBytes = 200;
inline constexpr uint64_t kMaxVersion = 4294967295ULL;  // Metadata.version is a uint32
inline constexpr uint64_t kMaxSchemaId = 2147483647ULL;  // Metadata.schema_id is an int32
inline constexpr std::size_t kMaxRecordBytes = 1000000;  // common/limits.py MAX_RECORD_BYTES
inline constexpr std::size_t kRecordFramingBytes = 40;
inline constexpr std::size_t kHeaderFramingBytes = 10;
inline constexpr int kIngestPartitions = 12;
inline constexpr const char* kPartitioner = "murmur2_random";

// ce_format values; PayloadFormat enum numbers 1..4 in this order.
inline constexpr const char* kFormats[] = {"avro", "protobuf", "json", "raw"};
// The PayloadFormat number of a ce_format name, or 0 if unknown.
int format_code(std::string_view name);

// (rule id, message) when the value of header `name` breaks its rule, else nothing. Rule ids are
// docs/contract.md's: header.message_id, header.utf8, header.component, header.integer, header.format.
std::optional<std::pair<std::string, std::string>> header_problem(std::string_view name,
                                                                 std::string_view value);

// What is wrong with a routing component (env, source, title, category) or an attribute name, or "".
std::string component_problem(std::string_view part, std::string_view value);
std::string attribute_name_problem(std::string_view name);

bool is_utf8(std::string_view text);

// Kafka's murmur2 (the Java client's Utils.murmur2, librdkafka's rd_murmur2), unsigned.
uint32_t murmur2(std::string_view data);
// The partition of a keyed record, as the Java client and librdkafka's murmur2_random.
int partition_for_key(std::string_view key, int partitions = kIngestPartitions);

// The ingest topic of (env, source): {env}.{source}.ingest.all-v1.
std::string ingest_topic(std::string_view env, std::string_view source);

}  // namespace contract
}  // namespace refinery
