// The golden vectors (tests/vectors/envelopes.json) against the C++ SDK, no broker: every envelope byte
// for byte (and libprotobuf agrees with the SDK's encoder), headers in order, ingest topic, record size,
// key partition; every header value judged as the contract says; murmur2; attribute names.
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/json_util.h>

#include <regex>

#include "envelope.pb.h"
#include "support.h"

using namespace refinery;

static std::string deterministic(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  message.SerializeToCodedStream(&coded);
  return out;
}

static void envelopes(const vectors::File& file) {
  CHECK_EQ(file.ingest_partitions(), contract::kIngestPartitions);
  CHECK_EQ(file.partitioner(), std::string(contract::kPartitioner));
  CHECK_EQ(file.max_record_bytes(), static_cast<int64_t>(contract::kMaxRecordBytes));
  CHECK_EQ(file.record_framing_bytes(), static_cast<int>(contract::kRecordFramingBytes));
  CHECK_EQ(file.header_framing_bytes(), static_cast<int>(contract::kHeaderFramingBytes));
  for (const auto& vector : file.envelopes()) {
    std::cout << "envelope vector " << vector.name() << std::endl;
    Metadata md = test::metadata_of(vector.metadata());
    std::string payload = test::unhex(vector.payload_hex());
    std::string key = test::unhex(vector.key_hex());
    Record record = build_record(md, payload, vector.has_key() ? &key : nullptr);
    CHECK_EQ(test::hex(record.value), vector.envelope_hex());
    CHECK_EQ(record.topic, vector.ingest_topic());
    CHECK_EQ(record.headers.size(), static_cast<std::size_t>(vector.headers_size()));
    for (int i = 0; i < vector.headers_size() && i < static_cast<int>(record.headers.size()); ++i) {
      CHECK_EQ(record.headers[i].first, vector.headers(i).name());
      CHECK_EQ(record.headers[i].second, vector.headers(i).value());
    }
    CHECK_EQ(static_cast<int64_t>(record_size(record)), vector.record_size());
    if (vector.has_key()) CHECK_EQ(contract::partition_for_key(key, file.ingest_partitions()), vector.partition());
    // libprotobuf reads the bytes back to the same metadata and writes them again identically
    refinery::envelope::v1::Envelope envelope;
    CHECK(envelope.ParseFromString(record.value));
    CHECK_EQ(envelope.metadata().title(), md.title);
    CHECK_EQ(envelope.metadata().version(), md.version);
    CHECK_EQ(static_cast<int>(envelope.metadata().attributes().size()), static_cast<int>(md.attributes.size()));
    CHECK_EQ(envelope.payload(), payload);
    CHECK_EQ(test::hex(deterministic(envelope)), vector.envelope_hex());
    if (vector.schema_type() == "PROTOBUF") {  // the SDK's protobuf path serializes the message the same
      vectors::Kill kill;
      CHECK(google::protobuf::util::JsonStringToMessage(vector.payload_json(), &kill).ok());
      CHECK_EQ(test::hex(deterministic(kill)), vector.payload_hex());
    }
  }
}

static void header_values(const vectors::File& file) {
  for (const auto& c : file.header_values()) {
    auto problem = contract::header_problem(c.header(), test::unhex(c.value_hex()));
    if (problem.has_value() == c.valid()) {
      std::cerr << "header " << c.header() << "=" << c.value_hex() << ": expected valid=" << c.valid() << std::endl;
      ++test::failures;
    }
    CHECK_EQ(problem ? problem->first : std::string(), c.rule());
  }
  for (const auto& c : file.keys()) {
    std::string key = test::unhex(c.key_hex());
    CHECK_EQ(contract::murmur2(key), c.murmur2());
    CHECK_EQ(contract::partition_for_key(key, file.ingest_partitions()), c.partition());
  }
  for (const auto& c : file.attribute_names()) CHECK_EQ(contract::attribute_name_problem(c.name()).empty(), c.valid());
}

static void ids_and_times() {
  const std::regex uuid7("[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::string previous;
  int64_t now = now_ms();
  for (int i = 0; i < 5000; ++i) {
    std::string id = new_message_id(now + i / 1000);
    CHECK(std::regex_match(id, uuid7));
    CHECK(id > previous);  // time-ordered within a thread
    previous = id;
  }
  CHECK_EQ(format_time(0), std::string("1970-01-01T00:00:00.000Z"));
  CHECK_EQ(format_time(1767225602999), std::string("2026-01-01T00:00:02.999Z"));
  CHECK_EQ(format_time(1767225603004), std::string("2026-01-01T00:00:03.004Z"));
  CHECK(contract::is_utf8("ünïcode ✓"));
  CHECK(!contract::is_utf8(std::string("\xc0\xaf", 2)));  // overlong
  CHECK(!contract::is_utf8(std::string("\xed\xa0\x80", 3)));  // surrogate
}

int main() {
  vectors::File file = test::load_vectors();
  envelopes(file);
  header_values(file);
  ids_and_times();
  return test::finish("contract_vectors");
}
