#include "refinery/registry.h"

#include <curl/curl.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>

#include "refinery/contract.h"
#include "refinery/errors.h"
#include "registry.pb.h"

namespace refinery {

namespace {

using google::protobuf::util::JsonParseOptions;
using google::protobuf::util::JsonStringToMessage;

size_t collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

template <typename M>
bool parse(const std::string& json, M* message) {
  JsonParseOptions options;
  options.ignore_unknown_fields = true;
  return JsonStringToMessage(json, message, options).ok();
}

bool is_not_found(const std::string& body) {
  sdk::RegistryErrorBody error;
  return parse(body, &error) && error.error_code() >= 40400 && error.error_code() <= 40403;
}

std::string error_text(const std::string& body) {
  sdk::RegistryErrorBody error;
  if (parse(body, &error) && !error.message().empty()) {
    return error.message() + " (error code " + std::to_string(error.error_code()) + ")";
  }
  return body.substr(0, 300);
}

Schema to_schema(const sdk::RegistrySchema& answer) {
  Schema schema;
  schema.id = answer.id();
  schema.type = answer.schema_type().empty() ? "AVRO" : answer.schema_type();
  schema.text = answer.schema();
  schema.version = static_cast<uint32_t>(answer.version());
  schema.subject = answer.subject();
  return schema;
}

}  // namespace

std::string subject_for(const std::string& title, const std::string& category) {
  for (const auto& [part, value] : {std::pair{"title", &title}, std::pair{"category", &category}}) {
    std::string problem = contract::component_problem(part, *value);
    if (!problem.empty()) throw InvalidInputError(problem);
  }
  return title + "." + category + "-value";
}

RegistryClient::RegistryClient(RegistryConfig config) : config_(std::move(config)) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (config_.url.rfind("http://", 0) != 0 && config_.url.rfind("https://", 0) != 0) {
    throw ConfigError("registry URL '" + config_.url + "' must start with http:// or https://");
  }
  while (!config_.url.empty() && config_.url.back() == '/') config_.url.pop_back();
  curl_ = curl_easy_init();
  if (curl_ == nullptr) throw Error("curl_easy_init failed");
}

RegistryClient::~RegistryClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

RegistryClient::Response RegistryClient::call(const std::string& method, const std::string& path,
                                              const std::string& body) {
  std::lock_guard<std::mutex> lock(mutex_);
  CURL* curl = static_cast<CURL*>(curl_);
  curl_easy_reset(curl);
  Response response;
  const std::string url = config_.url + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.timeout_s * 1000));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  struct curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Accept: application/vnd.schemaregistry.v1+json, application/json");
  if (method == "POST") {
    headers = curl_slist_append(headers, "Content-Type: application/vnd.schemaregistry.v1+json");
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (!config_.username.empty()) {
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(curl, CURLOPT_USERNAME, config_.username.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, config_.password.c_str());
  }
  CURLcode code = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (code != CURLE_OK) {
    throw RegistryUnavailableError("schema registry " + config_.url + " unreachable (" + method + " " + path +
                                   "): " + curl_easy_strerror(code));
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  if (response.status >= 500) {
    throw RegistryUnavailableError("schema registry " + config_.url + " failed (" + method + " " + path +
                                   "): HTTP " + std::to_string(response.status) + ": " + error_text(response.body));
  }
  if (response.status == 401 || response.status == 403) {
    throw RegistryUnavailableError("schema registry " + config_.url + " refused our credentials: HTTP " +
                                   std::to_string(response.status));
  }
  return response;
}

Schema RegistryClient::resolve(const std::string& title, const std::string& category, uint32_t version) {
  auto key = std::make_tuple(title, category, version);
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
  }
  if (version < 1) throw InvalidInputError("version must be >= 1");
  const std::string subject = subject_for(title, category);
  Response response = call("GET", "/subjects/" + subject + "/versions/" + std::to_string(version));
  if (response.status == 404 && is_not_found(response.body)) {
    throw SchemaNotRegisteredError("no schema registered for title='" + title + "' category='" + category +
                                   "' version=" + std::to_string(version) + " (subject '" + subject +
                                   "'); register it first");
  }
  sdk::RegistrySchema answer;
  if (response.status != 200 || !parse(response.body, &answer) || answer.id() <= 0) {
    throw RegistryUnavailableError("unexpected registry answer for " + subject + " v" + std::to_string(version) +
                                   ": HTTP " + std::to_string(response.status) + ": " + error_text(response.body));
  }
  Schema schema = to_schema(answer);
  schema.subject = subject;
  schema.version = version;
  std::lock_guard<std::mutex> lock(cache_mutex_);
  cache_[key] = schema;
  return schema;
}

Schema RegistryClient::lookup_in_subject(const std::string& subject, const std::string& type,
                                         const std::string& text, bool* found) {
  sdk::RegisterRequest request;
  request.set_schema(text);
  if (type != "AVRO") request.set_schema_type(type);
  std::string body;
  (void)google::protobuf::util::MessageToJsonString(request, &body);
  Response response = call("POST", "/subjects/" + subject, body);
  *found = false;
  if (response.status == 404 && is_not_found(response.body)) return {};
  sdk::RegistrySchema answer;
  if (response.status != 200 || !parse(response.body, &answer)) {
    throw SchemaRejectedError("registry refused the schema for '" + subject + "': HTTP " +
                              std::to_string(response.status) + ": " + error_text(response.body));
  }
  *found = true;
  return to_schema(answer);
}

Schema RegistryClient::register_schema(const std::string& title, const std::string& category,
                                       const std::string& type, const std::string& text,
                                       std::optional<uint32_t> version) {
  if (type != "AVRO" && type != "PROTOBUF" && type != "JSON") {
    throw InvalidInputError("schema type '" + type + "' is not AVRO, PROTOBUF or JSON");
  }
  const std::string subject = subject_for(title, category);
  bool found = false;
  Schema existing = lookup_in_subject(subject, type, text, &found);
  if (found) {
    if (version && existing.version != *version) {
      throw SchemaVersionError("'" + subject + "': this schema is already version " +
                               std::to_string(existing.version) + ", not " + std::to_string(*version));
    }
    return resolve(title, category, existing.version);
  }
  if (version) {
    Response listed = call("GET", "/subjects/" + subject + "/versions");
    sdk::VersionList versions;
    if (listed.status == 200 && !parse("{\"v\":" + listed.body + "}", &versions)) {
      throw RegistryUnavailableError("unexpected version list for '" + subject + "': " + listed.body.substr(0, 200));
    }
    if (listed.status != 200 && !(listed.status == 404 && is_not_found(listed.body))) {
      throw RegistryUnavailableError("listing versions of '" + subject + "': HTTP " + std::to_string(listed.status));
    }
    int highest = 0;
    for (int v : versions.v()) highest = std::max(highest, v);
    if (static_cast<uint32_t>(highest + 1) != *version) {
      throw SchemaVersionError("'" + subject + "' has " + std::to_string(versions.v_size()) +
                               " versions; registering now would make version " + std::to_string(highest + 1) +
                               ", not " + std::to_string(*version));
    }
  }
  sdk::RegisterRequest request;
  request.set_schema(text);
  if (type != "AVRO") request.set_schema_type(type);
  std::string body;
  (void)google::protobuf::util::MessageToJsonString(request, &body);
  Response response = call("POST", "/subjects/" + subject + "/versions", body);
  sdk::RegistrySchema answer;
  if (response.status != 200 || !parse(response.body, &answer) || answer.id() <= 0) {
    throw SchemaRejectedError("registry refused the schema for '" + subject + "': HTTP " +
                              std::to_string(response.status) + ": " + error_text(response.body));
  }
  Schema registered = lookup_in_subject(subject, type, text, &found);
  if (!found || registered.id != answer.id()) {
    throw RegistryUnavailableError("registry did not confirm the schema registered under '" + subject + "'");
  }
  if (version && registered.version != *version) {
    throw SchemaVersionError("'" + subject + "': the schema was registered as version " +
                             std::to_string(registered.version) + ", not " + std::to_string(*version));
  }
  return resolve(title, category, registered.version);
}

}  // namespace refinery
