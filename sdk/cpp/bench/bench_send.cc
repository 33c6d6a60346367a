// C++ SDK send rate vs a raw librdkafka producer sending the same records pre-built (envelope bytes and
// headers made once, before the clock), with the SDK's librdkafka settings, in the same run, rounds
// alternating. Both count a record only when the broker acknowledged it (the time includes the flush).
// Prints one JSON object. bench/benchmarks/cpp_producer.py runs it (python -m bench --only cpp_producer).
//
//   refinery_bench --bootstrap 127.0.0.1:9092 --source benchcpp --count 200000 --size 1024 --rounds 3
#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "refinery/producer.h"

using namespace refinery;
using Clock = std::chrono::steady_clock;

namespace {

class OneSchema : public SchemaSource {
 public:
  Schema resolve(const std::string&, const std::string&, uint32_t version) override {
    return {1, "AVRO", R"("bytes")", version, "bench"};
  }
};

class CountingReports : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& message) override {
    (message.err() ? failed : delivered).fetch_add(1, std::memory_order_relaxed);
  }
  std::atomic<uint64_t> delivered{0}, failed{0};
};

struct Args {
  std::string bootstrap = "127.0.0.1:9092";
  std::string source = "benchcpp";
  long count = 100000;
  std::size_t size = 1024;
  int rounds = 3;
  int pool = 5000;
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// CPU seconds of the whole process (every thread, librdkafka's included): steadier than a rate on a
// shared machine, where the broker's share of the cores decides the rate.
double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

struct Measured {
  double rate;
  double cpu_us_per_record;
  double sender_cpu_us_per_record;  // the sending thread's share
};

// The raw baseline: pre-built records, a Headers object per produce (librdkafka takes it), the SDK's
// settings, a counting delivery report callback served by poll().
Measured raw_send(const Args& args, const std::vector<Record>& records) {
  CountingReports reports;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string error;
  const std::map<std::string, std::string> properties = {
      {"bootstrap.servers", args.bootstrap}, {"enable.idempotence", "true"}, {"acks", "all"},
      {"linger.ms", "20"}, {"compression.type", "lz4"}, {"queue.buffering.max.messages", "100000"},
      {"message.timeout.ms", "120000"}, {"message.max.bytes", "1000000"}, {"partitioner", "murmur2_random"}};
  for (const auto& [key, value] : properties) conf->set(key, value, error);
  conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(&reports), error);
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), error));
  auto produce = [&](const Record& record) {
    RdKafka::Headers* headers = RdKafka::Headers::create();
    for (const auto& [name, value] : record.headers) headers->add(name, value.data(), value.size());
    while (producer->produce(record.topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                             const_cast<char*>(record.value.data()), record.value.size(), record.key.data(),
                             record.key.size(), 0, headers, nullptr) == RdKafka::ERR__QUEUE_FULL) {
      producer->poll(1);
    }
  };
  for (int i = 0; i < 100; ++i) produce(records[i]);  // connect and get a producer id before the clock
  producer->flush(30000);
  auto start = Clock::now();
  double cpu = cpu_seconds(), sender = thread_cpu_seconds();
  for (long i = 0; i < args.count; ++i) {
    produce(records[i % records.size()]);
    if (i % 1000 == 0) producer->poll(0);
  }
  producer->flush(120000);
  double elapsed = seconds_since(start);
  cpu = cpu_seconds() - cpu;
  sender = thread_cpu_seconds() - sender;
  if (reports.failed.load() != 0 || producer->outq_len() != 0) std::cerr << "raw: deliveries failed" << std::endl;
  const double n = static_cast<double>(args.count);
  return {n / elapsed, cpu * 1e6 / n, sender * 1e6 / n};
}

Measured sdk_send(const Args& args, Producer& producer, const std::vector<std::string>& payloads,
                  const std::vector<SendOptions>& options) {
  auto start = Clock::now();
  double cpu = cpu_seconds(), sender = thread_cpu_seconds();
  for (long i = 0; i < args.count; ++i) {
    std::size_t k = static_cast<std::size_t>(i) % payloads.size();
    producer.send("1234", "bench_event", 1, payloads[k], options[k]);
  }
  producer.flush(120000);
  double elapsed = seconds_since(start);
  cpu = cpu_seconds() - cpu;
  sender = thread_cpu_seconds() - sender;
  const double n = static_cast<double>(args.count);
  return {n / elapsed, cpu * 1e6 / n, sender * 1e6 / n};
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--bootstrap") args.bootstrap = value;
    else if (flag == "--source") args.source = value;
    else if (flag == "--count") args.count = std::stol(value);
    else if (flag == "--size") args.size = std::stoul(value);
    else if (flag == "--rounds") args.rounds = std::stoi(value);
    else if (flag == "--pool") args.pool = std::stoi(value);
  }
  ProducerConfig config;
  config.bootstrap_servers = args.bootstrap;
  config.env = "prod";
  config.source = args.source;
  config.producer_id = "bench";
  Producer sdk(config, std::make_shared<OneSchema>());
  std::mt19937 rng(42);
  std::vector<std::string> payloads;
  std::vector<SendOptions> options;
  std::vector<Record> records;
  for (int i = 0; i < args.pool; ++i) {
    std::string payload(args.size, '\0');
    for (auto& c : payload) c = static_cast<char>(rng() & 0xff);
    SendOptions o;
    o.key = "match-" + std::to_string(i % 500);
    o.attributes["platform"] = i % 2 ? "pc" : "ps5";
    records.push_back(sdk.prepare("1234", "bench_event", 1, payload, o));  // also creates the topic
    payloads.push_back(std::move(payload));
    options.push_back(std::move(o));
  }
  sdk_send({args.bootstrap, args.source, 100, args.size, 1, args.pool}, sdk, payloads, options);  // warm up
  std::vector<double> raw, ours, raw_cpu, our_cpu, raw_sender, our_sender;
  for (int round = 0; round < args.rounds; ++round) {
    Measured r{}, o{};
    if (round % 2 == 0) {  // alternate which goes first, so neither always follows the other's tail
      r = raw_send(args, records);
      o = sdk_send(args, sdk, payloads, options);
    } else {
      o = sdk_send(args, sdk, payloads, options);
      r = raw_send(args, records);
    }
    raw.push_back(r.rate);
    ours.push_back(o.rate);
    raw_cpu.push_back(r.cpu_us_per_record);
    our_cpu.push_back(o.cpu_us_per_record);
    raw_sender.push_back(r.sender_cpu_us_per_record);
    our_sender.push_back(o.sender_cpu_us_per_record);
    std::cerr << "round " << round + 1 << ": raw " << static_cast<long>(r.rate) << " msg/s " << r.cpu_us_per_record
              << " us CPU/record, sdk " << static_cast<long>(o.rate) << " msg/s " << o.cpu_us_per_record
              << " us CPU/record (sending thread: raw " << r.sender_cpu_us_per_record << ", sdk "
              << o.sender_cpu_us_per_record << ")" << std::endl;
  }
  auto list = [](const std::vector<double>& v) {
    std::string out = "[";
    for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
    return out + "]";
  };
  std::cout << "{\"count\": " << args.count << ", \"size\": " << args.size << ", \"rounds\": " << args.rounds
            << ", \"raw_msgs_per_s\": " << list(raw) << ", \"sdk_msgs_per_s\": " << list(ours)
            << ", \"raw_cpu_us_per_record\": " << list(raw_cpu) << ", \"sdk_cpu_us_per_record\": " << list(our_cpu)
            << ", \"raw_median\": " << median(raw) << ", \"sdk_median\": " << median(ours)
            << ", \"raw_cpu_median\": " << median(raw_cpu) << ", \"sdk_cpu_median\": " << median(our_cpu)
            << ", \"raw_sender_cpu_median\": " << median(raw_sender)
            << ", \"sdk_sender_cpu_median\": " << median(our_sender)
            << ", \"librdkafka\": \"" << RdKafka::version_str() << "\", \"failed\": " << sdk.stats().failed << "}"
            << std::endl;
  return 0;
}
