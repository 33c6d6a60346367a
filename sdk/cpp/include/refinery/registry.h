// The schema registry: the subject naming rule, explicit registration and cached look-ups.
//
// Subject rule (docs/contract.md): the schema of (title, category, version) is version `version` of
// subject "{title}.{category}-value". The registry numbers versions itself, in registration order, so
// register_schema() refuses when the registry would assign another version than the one asked for.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

namespace refinery {

struct Schema {
  int32_t id = 0;
  std::string type;  // AVRO | PROTOBUF | JSON
  std::string text;
  uint32_t version = 0;
  std::string subject;
};

// Where a producer gets the schema of (title, category, version).
class SchemaSource {
 public:
  virtual ~SchemaSource() = default;
  // Throws SchemaNotRegisteredError when there is none, RegistryUnavailableError when it cannot tell.
  virtual Schema resolve(const std::string& title, const std::string& category, uint32_t version) = 0;
};

std::string subject_for(const std::string& title, const std::string& category);

struct RegistryConfig {
  std::string url = "http://127.0.0.1:8081";
  double timeout_s = 5.0;
  std::string username;  // HTTP basic auth when not empty
  std::string password;
};

class RegistryClient final : public SchemaSource {
 public:
  explicit RegistryClient(RegistryConfig config);
  ~RegistryClient() override;
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  // Cached after the first answer (a registered version never changes); "not registered" is not cached.
  Schema resolve(const std::string& title, const std::string& category, uint32_t version) override;

  // Register `text` (type AVRO, PROTOBUF or JSON) for (title, category). With `version`, refuse with
  // SchemaVersionError unless it becomes (or already is) that version.
  Schema register_schema(const std::string& title, const std::string& category, const std::string& type,
                         const std::string& text, std::optional<uint32_t> version = std::nullopt);

 private:
  struct Response {
    long status = 0;
    std::string body;
  };
  Response call(const std::string& method, const std::string& path, const std::string& body = "");
  Schema lookup_in_subject(const std::string& subject, const std::string& type, const std::string& text,
                           bool* found);

  RegistryConfig config_;
  std::mutex mutex_;  // one curl handle, reused (keep-alive), one request at a time
  void* curl_ = nullptr;
  std::mutex cache_mutex_;
  std::map<std::tuple<std::string, std::string, uint32_t>, Schema> cache_;
};

}  // namespace refinery
