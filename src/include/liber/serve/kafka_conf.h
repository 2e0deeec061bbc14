// One librdkafka setting, refused settings thrown as Error(Config): the Kafka source and the
// output topic configure their clients the same way.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <string>

#include <fmt/format.h>

#include "liber/error.h"

namespace liber::serve {

inline void set_kafka_conf(RdKafka::Conf& conf, const std::string& key, const std::string& value) {
  std::string err;
  if (conf.set(key, value, err) != RdKafka::Conf::CONF_OK)
    throw Error(ErrorKind::Config, fmt::format("Kafka setting {}={}: {}", key, value, err));
}

}  // namespace liber::serve
