// Envelope metadata -> record value (the Envelope protobuf, deterministic bytes) and record headers,
// exactly as docs/contract.md and the golden vectors (tests/vectors/envelopes.json) say.
#pragma once

#include <charconv>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace refinery {

struct Metadata {
  std::string message_id;
  std::string env;
  std::string source;
  std::string title;
  std::string category;
  uint32_t version = 0;
  int32_t schema_id = 0;
  std::string payload_format;  // avro | protobuf | json | raw
  int64_t produced_at_ms = 0;
  std::string producer;
  std::map<std::string, std::string> attributes;  // sorted by name (byte order), as on the wire
};

using Header = std::pair<std::string, std::string>;

// RFC 3339 UTC with millisecond precision: 2026-01-01T00:00:00.123Z.
std::string format_time(int64_t ms);
// The same into `out` (at least 32 bytes); returns the length (24 for years 0000-9999).
std::size_t format_time_into(int64_t ms, char* out);

// What a producer sends: topic, optional key, the envelope bytes and the headers in canonical order.
struct Record {
  std::string topic;
  bool has_key = false;
  std::string key;
  std::string value;
  std::vector<Header> headers;
  int64_t timestamp_ms = 0;
};

// Throws InvalidInputError (refinery/errors.h) naming the first field that breaks the contract.
void validate_metadata(const Metadata& md);

// The Envelope's protobuf bytes, deterministic: fields in number order, defaults omitted, attributes
// sorted by name with key and value always written (what libprotobuf and upb write in deterministic mode).
std::string encode_envelope(const Metadata& md, std::string_view payload);

// The record headers: ce_specversion, content-type, ce_id, ce_env, ce_source, ce_title, ce_type,
// ce_version, ce_schemaid, ce_format, ce_time, ce_producer, then attr.<name> sorted by name.
std::vector<Header> envelope_headers(const Metadata& md);

// Calls fn(name, value) for each header of envelope_headers(md), in order, without building the list.
template <typename Fn>
void for_each_header(const Metadata& md, Fn&& fn) {
  fn("ce_specversion", "1.0");
  fn("content-type", "application/x-protobuf; messageType=refinery.envelope.v1.Envelope");
  fn("ce_id", md.message_id);
  fn("ce_env", md.env);
  fn("ce_source", md.source);
  fn("ce_title", md.title);
  fn("ce_type", md.category);
  char version[16], schema_id[16], time[32];
  fn("ce_version", std::string_view(version, std::to_chars(version, version + 16, md.version).ptr - version));
  fn("ce_schemaid",
     std::string_view(schema_id, std::to_chars(schema_id, schema_id + 16, md.schema_id).ptr - schema_id));
  fn("ce_format", md.payload_format);
  fn("ce_time", std::string_view(time, format_time_into(md.produced_at_ms, time)));
  fn("ce_producer", md.producer);
  std::string name;
  for (const auto& [attribute, value] : md.attributes) {
    name.assign("attr.").append(attribute);
    fn(name, value);
  }
}

// A whole record for the ingest topic (validates first).
Record build_record(const Metadata& md, std::string_view payload, const std::string* key);

// key + value + headers + framing, as common/limits.py record_size (what the size limit counts).
std::size_t record_size(const Record& record);

// A fresh UUIDv7 in canonical lowercase text (time-ordered within a thread).
std::string new_message_id(int64_t now_ms);

int64_t now_ms();

}  // namespace refinery
