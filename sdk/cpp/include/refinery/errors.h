// One error tree: every error the SDK throws on purpose derives from refinery::Error.
#pragma once

#include <stdexcept>
#include <string>

namespace refinery {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Input that can never become valid by retrying (bad metadata, payload, attribute, size).
struct InvalidInputError : Error {
  using Error::Error;
};
struct ConfigError : InvalidInputError {
  using InvalidInputError::InvalidInputError;
};
// No schema is registered for (title, category, version): register it first.
struct SchemaNotRegisteredError : InvalidInputError {
  using InvalidInputError::InvalidInputError;
};
// Registering would not give the version the caller asked for (versions are assigned in order).
struct SchemaVersionError : InvalidInputError {
  using InvalidInputError::InvalidInputError;
};
// The registry refused a schema (invalid, incompatible).
struct SchemaRejectedError : InvalidInputError {
  using InvalidInputError::InvalidInputError;
};
struct RegistryUnavailableError : Error {
  using Error::Error;
};
struct BrokerUnavailableError : Error {
  using Error::Error;
};
// The local queue stayed full for the whole block timeout (back-pressure).
struct QueueFullError : Error {
  using Error::Error;
};
// librdkafka refused a record at once (e.g. too large for message.max.bytes).
struct DeliveryError : Error {
  using Error::Error;
};
// flush() gave up with records still undelivered.
struct FlushTimeoutError : Error {
  explicit FlushTimeoutError(const std::string& what, int remaining) : Error(what), remaining(remaining) {}
  int remaining;
};

}  // namespace refinery
