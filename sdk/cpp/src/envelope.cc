#include "refinery/envelope.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>

#include "refinery/contract.h"
#include "refinery/errors.h"

namespace refinery {

namespace {

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

std::size_t varint_size(uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// A length-delimited field (wire type 2); proto3 omits empty strings unless `always`.
void put_bytes(std::string& out, uint32_t field, std::string_view s, bool always = false) {
  if (s.empty() && !always) return;
  put_varint(out, (field << 3) | 2);
  put_varint(out, s.size());
  out.append(s.data(), s.size());
}

void put_uint(std::string& out, uint32_t field, uint64_t v) {
  if (v == 0) return;
  put_varint(out, field << 3);
  put_varint(out, v);
}

}  // namespace

void validate_metadata(const Metadata& md) {
  if (md.message_id.empty() || md.message_id.size() > contract::kMaxMessageIdBytes) {
    throw InvalidInputError("message_id must have 1 to 200 bytes, got " + std::to_string(md.message_id.size()));
  }
  if (!contract::is_utf8(md.message_id)) throw InvalidInputError("message_id is not valid UTF-8");
  const std::pair<const char*, const std::string*> parts[] = {
      {"env", &md.env}, {"source", &md.source}, {"title", &md.title}, {"category", &md.category}};
  for (const auto& [part, value] : parts) {
    std::string problem = contract::component_problem(part, *value);
    if (!problem.empty()) throw InvalidInputError(problem);
  }
  if (md.version < 1) throw InvalidInputError("version must be >= 1");
  if (md.schema_id < 1) throw InvalidInputError("schema_id must be >= 1");
  if (contract::format_code(md.payload_format) == 0) {
    throw InvalidInputError("payload_format '" + md.payload_format + "' is not avro, protobuf, json or raw");
  }
  if (!contract::is_utf8(md.producer)) throw InvalidInputError("producer is not valid UTF-8");
  for (const auto& [name, value] : md.attributes) {
    std::string problem = contract::attribute_name_problem(name);
    if (!problem.empty()) throw InvalidInputError(problem);
    if (!contract::is_utf8(value)) throw InvalidInputError("attribute '" + name + "' is not valid UTF-8");
  }
}

std::string encode_envelope(const Metadata& md, std::string_view payload) {
  std::string meta;
  meta.reserve(128 + md.producer.size() + md.attributes.size() * 32);
  put_bytes(meta, 1, md.message_id);
  put_bytes(meta, 2, md.env);
  put_bytes(meta, 3, md.source);
  put_bytes(meta, 4, md.title);
  put_bytes(meta, 5, md.category);
  put_uint(meta, 6, md.version);
  put_uint(meta, 7, static_cast<uint64_t>(static_cast<int64_t>(md.schema_id)));  // int32: sign-extended
  put_uint(meta, 8, static_cast<uint64_t>(contract::format_code(md.payload_format)));
  put_uint(meta, 9, static_cast<uint64_t>(md.produced_at_ms));
  put_bytes(meta, 10, md.producer);
  std::string entry;
  for (const auto& [name, value] : md.attributes) {
    entry.clear();
    put_bytes(entry, 1, name, true);
    put_bytes(entry, 2, value, true);
    put_bytes(meta, 11, entry, true);
  }
  std::string out;
  out.reserve(meta.size() + payload.size() + 2 + varint_size(meta.size()) + 1 + varint_size(payload.size()));
  put_bytes(out, 1, meta, true);  // the metadata message is always present
  put_bytes(out, 2, payload);
  return out;
}

std::vector<Header> envelope_headers(const Metadata& md) {
  std::vector<Header> headers;
  headers.reserve(12 + md.attributes.size());
  for_each_header(md, [&](std::string_view name, std::string_view value) { headers.emplace_back(name, value); });
  return headers;
}

Record build_record(const Metadata& md, std::string_view payload, const std::string* key) {
  validate_metadata(md);
  Record record;
  record.topic = contract::ingest_topic(md.env, md.source);
  if (key != nullptr) {
    record.has_key = true;
    record.key = *key;
  }
  record.value = encode_envelope(md, payload);
  record.headers = envelope_headers(md);
  record.timestamp_ms = md.produced_at_ms;
  return record;
}

std::size_t record_size(const Record& record) {
  std::size_t total = contract::kRecordFramingBytes + record.key.size() + record.value.size();
  for (const auto& [name, value] : record.headers) total += name.size() + contract::kHeaderFramingBytes + value.size();
  return total;
}

std::size_t format_time_into(int64_t ms, char* out) {
  // The seconds part is cached per thread: records of the same second share it.
  thread_local int64_t cached_second = INT64_MIN;
  thread_local char stamp[32];
  thread_local std::size_t stamp_size = 0;
  int64_t seconds = ms / 1000, millis = ms % 1000;
  if (millis < 0) {
    millis += 1000;
    seconds -= 1;
  }
  if (seconds != cached_second) {
    std::time_t t = static_cast<std::time_t>(seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    stamp_size = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    cached_second = seconds;
  }
  std::memcpy(out, stamp, stamp_size);
  char* p = out + stamp_size;
  *p++ = '.';
  *p++ = static_cast<char>('0' + millis / 100);
  *p++ = static_cast<char>('0' + millis / 10 % 10);
  *p++ = static_cast<char>('0' + millis % 10);
  *p++ = 'Z';
  return static_cast<std::size_t>(p - out);
}

std::string format_time(int64_t ms) {
  char out[32];
  return std::string(out, format_time_into(ms, out));
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string new_message_id(int64_t now) {
  // RFC 9562 UUIDv7: 48-bit Unix ms, version 7, 12 bits that count within a millisecond (so ids from one
  // thread sort by creation), variant 10, 62 random bits.
  thread_local std::mt19937_64 rng{std::random_device{}() ^ (static_cast<uint64_t>(now) << 16)};
  thread_local int64_t last_ms = -1;
  thread_local uint32_t counter = 0;
  if (now > last_ms) {
    last_ms = now;
    counter = static_cast<uint32_t>(rng() & 0x3ff);  // leave room to count up
  } else {
    now = last_ms;  // the clock went back or the counter runs on: stay ordered
    if (++counter > 0xfff) {
      counter = 0;
      last_ms = ++now;
    }
  }
  uint64_t hi = (static_cast<uint64_t>(now) << 16) | 0x7000 | counter;
  uint64_t lo = (rng() & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  static const char digits[] = "0123456789abcdef";
  std::string out(36, '-');
  int pos = 0;
  for (int nibble = 15; nibble >= 0; --nibble) {  // 8-4-4 from hi, then 4-12 from lo
    if (pos == 8 || pos == 13) ++pos;
    out[pos++] = digits[(hi >> (nibble * 4)) & 0xf];
  }
  for (int nibble = 15; nibble >= 0; --nibble) {
    if (pos == 18 || pos == 23) ++pos;
    out[pos++] = digits[(lo >> (nibble * 4)) & 0xf];
  }
  return out;
}

}  // namespace refinery
