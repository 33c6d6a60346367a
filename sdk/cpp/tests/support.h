// Shared by the SDK's tests: checks, hex, the golden vectors, a fixed schema source, reading topics back.
#pragma once

#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "refinery/producer.h"
#include "vectors.pb.h"

namespace test {

extern int failures;

#define CHECK(cond)                                                                           \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::cerr << __FILE__ << ":" << __LINE__ << ": CHECK failed: " #cond << std::endl;      \
      ++test::failures;                                                                       \
    }                                                                                         \
  } while (0)

#define CHECK_EQ(a, b)                                                                              \
  do {                                                                                              \
    auto va = (a);                                                                                  \
    auto vb = (b);                                                                                  \
    if (!(va == vb)) {                                                                              \
      std::cerr << __FILE__ << ":" << __LINE__ << ": CHECK_EQ failed: " #a " == " #b "\n  left:  " \
                << va << "\n  right: " << vb << std::endl;                                          \
      ++test::failures;                                                                             \
    }                                                                                               \
  } while (0)

// Runs fn, expecting it to throw E whose message contains `needle`.
#define CHECK_THROWS(E, needle, ...)                                                                 \
  do {                                                                                               \
    bool thrown = false;                                                                             \
    try {                                                                                            \
      __VA_ARGS__;                                                                                   \
    } catch (const E& error) {                                                                       \
      thrown = true;                                                                                 \
      if (std::string(error.what()).find(needle) == std::string::npos) {                             \
        std::cerr << __FILE__ << ":" << __LINE__ << ": " #E " without '" << needle                   \
                  << "': " << error.what() << std::endl;                                             \
        ++test::failures;                                                                            \
      }                                                                                              \
    }                                                                                                \
    if (!thrown) {                                                                                   \
      std::cerr << __FILE__ << ":" << __LINE__ << ": expected " #E " from " #__VA_ARGS__ << std::endl; \
      ++test::failures;                                                                              \
    }                                                                                                \
  } while (0)

int finish(const char* name);  // prints the verdict; the process exit code

std::string hex(const std::string& bytes);
std::string unhex(const std::string& text);
vectors::File load_vectors();
refinery::Metadata metadata_of(const vectors::Meta& meta);
std::string env_or(const char* name, const std::string& fallback);
std::string unique_suffix();

// A schema source that knows fixed schemas (no registry).
class FixedSchemas : public refinery::SchemaSource {
 public:
  void add(const std::string& title, const std::string& category, uint32_t version, refinery::Schema schema);
  refinery::Schema resolve(const std::string& title, const std::string& category, uint32_t version) override;

 private:
  std::map<std::string, refinery::Schema> schemas_;
};

struct Consumed {
  std::string topic;
  int32_t partition;
  int64_t offset;
  bool has_key;
  std::string key;
  std::string value;
  std::vector<refinery::Header> headers;
};

// Every record of `topic` from the beginning, until `expected` arrived or `timeout_ms` passed.
std::vector<Consumed> consume(const std::string& bootstrap, const std::string& topic, std::size_t expected,
                              int timeout_ms = 30000);
int partition_count(const std::string& bootstrap, const std::string& topic);
// Create a topic with topic configs (already existing is fine); false on failure.
bool create_topic(const std::string& bootstrap, const std::string& topic, int partitions,
                  const std::map<std::string, std::string>& configs);

}  // namespace test
