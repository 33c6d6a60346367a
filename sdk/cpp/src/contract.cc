#include "refinery/contract.h"

#include <cstring>

namespace refinery {
namespace contract {

int format_code(std::string_view name) {
  for (int i = 0; i < 4; ++i) {
    if (name == kFormats[i]) return i + 1;
  }
  return 0;
}

bool is_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  std::size_t i = 0, n = text.size();
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;  // overlong forms and surrogates are not UTF-8
    }
    i += len;
  }
  return true;
}

static bool is_component_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

std::string component_problem(std::string_view part, std::string_view value) {
  if (value.empty()) return std::string(part) + " is empty; every topic-name component needs a value";
  for (char c : value) {
    if (!is_component_char(c)) {
      return std::string(part) + " '" + std::string(value) +
             "' is not allowed in a topic name: use letters, digits, '_' and '-' only";
    }
  }
  return "";
}

std::string attribute_name_problem(std::string_view name) {
  bool ok = !name.empty();
  for (char c : name) ok = ok && (is_component_char(c) || c == '.');
  return ok ? "" : "attribute name '" + std::string(name) + "' must be letters, digits, '_', '.' or '-' (at least one)";
}

std::optional<std::pair<std::string, std::string>> header_problem(std::string_view name, std::string_view value) {
  const std::string quoted = "header '" + std::string(name) + "'";
  if (name == kMessageId && (value.empty() || value.size() > kMaxMessageIdBytes)) {
    return std::make_pair(std::string("header.message_id"),
                          quoted + " must have 1 to 200 bytes, got " + std::to_string(value.size()));
  }
  if (!is_utf8(value)) return std::make_pair(std::string("header.utf8"), quoted + " is not valid UTF-8");
  const char* part = name == kEnv ? "env" : name == kSource ? "source" : name == kTitle ? "title"
                   : name == kCategory ? "category" : nullptr;
  if (part != nullptr) {
    std::string problem = component_problem(part, value);
    if (!problem.empty()) return std::make_pair(std::string("header.component"), quoted + ": " + problem);
  } else if (name == kVersion || name == kSchemaId) {
    uint64_t limit = name == kVersion ? kMaxVersion : kMaxSchemaId;
    bool ok = !value.empty() && value.size() <= 10 && value[0] >= '1' && value[0] <= '9';
    uint64_t number = 0;
    for (char c : value) {
      ok = ok && c >= '0' && c <= '9';
      number = number * 10 + static_cast<uint64_t>(c - '0');
    }
    if (!ok || number > limit) {
      return std::make_pair(std::string("header.integer"),
                            quoted + " must be a positive integer without sign or leading zero, at most " +
                                std::to_string(limit) + ", got '" + std::string(value) + "'");
    }
  } else if (name == kFormat && format_code(value) == 0) {
    return std::make_pair(std::string("header.format"),
                          quoted + " must be one of avro, protobuf, json, raw, got '" + std::string(value) + "'");
  }
  return std::nullopt;
}

uint32_t murmur2(std::string_view data) {
  const uint32_t m = 0x5bd1e995;
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  const std::size_t length = data.size();
  uint32_t h = 0x9747b28c ^ static_cast<uint32_t>(length);
  const std::size_t whole = length & ~static_cast<std::size_t>(3);
  for (std::size_t i = 0; i < whole; i += 4) {
    uint32_t k = static_cast<uint32_t>(bytes[i]) | (static_cast<uint32_t>(bytes[i + 1]) << 8) |
                 (static_cast<uint32_t>(bytes[i + 2]) << 16) | (static_cast<uint32_t>(bytes[i + 3]) << 24);
    k *= m;
    k ^= k >> 24;
    k *= m;
    h *= m;
    h ^= k;
  }
  switch (length & 3) {
    case 3:
      h ^= static_cast<uint32_t>(bytes[whole + 2]) << 16;
      [[fallthrough]];
    case 2:
      h ^= static_cast<uint32_t>(bytes[whole + 1]) << 8;
      [[fallthrough]];
    case 1:
      h ^= bytes[whole];
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return h;
}

int partition_for_key(std::string_view key, int partitions) {
  return static_cast<int>((murmur2(key) & 0x7fffffffU) % static_cast<uint32_t>(partitions));
}

std::string ingest_topic(std::string_view env, std::string_view source) {
  std::string out;
  out.reserve(env.size() + source.size() + 16);
  out.append(env).append(".").append(source).append(".ingest.all-v1");
  return out;
}

}  // namespace contract
}  // namespace refinery
