#include "plugin/index_factory.h"

#include <faiss/IndexIDMap.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/index_factory.h>

#include <charconv>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "plugin/IndexRQVAE.h"

namespace semid {
namespace {

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> parts;
  std::size_t begin = 0;
  while (true) {
    const std::size_t end = text.find(separator, begin);
    parts.emplace_back(text.substr(begin, end - begin));
    if (end == std::string_view::npos) return parts;
    begin = end + 1;
  }
}

template <class T>
T parse_number(const std::string& key, const std::string& value) {
  T out{};
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), out);
  FAISS_THROW_IF_NOT_FMT(error == std::errc() && end == value.data() + value.size(),
                         "semid::index_factory: option %s=%s: not a valid number", key.c_str(),
                         value.c_str());
  return out;
}

std::vector<int> parse_hidden(const std::string& value) {
  if (value == "none") return {};
  std::vector<int> sizes;
  for (const std::string& part : split(value, '-'))
    sizes.push_back(parse_number<int>("hidden", part));
  return sizes;
}

// Applies one "key=value" option to the model config or the training options.
void apply_option(const std::string& option, RqVaeConfig* config, TrainOptions* train,
                  bool* arch_given) {
  const std::size_t eq = option.find('=');
  FAISS_THROW_IF_NOT_FMT(eq != std::string::npos,
                         "semid::index_factory: '%s' is not an option (key=value) and no component "
                         "may follow RQVAE",
                         option.c_str());
  const std::string key = option.substr(0, eq);
  const std::string value = option.substr(eq + 1);
  if (key == "latent") {
    // A latent size asks for a bottleneck: the MLP architecture, unless arch= says otherwise.
    config->latent_dim = parse_number<int>(key, value);
    if (!*arch_given) config->architecture = RqVaeArchitecture::kMlp;
  } else if (key == "arch") {
    auto arch = parse_architecture(value);
    FAISS_THROW_IF_NOT_FMT(arch.is_ok(), "semid::index_factory: %s",
                           arch.status().to_string().c_str());
    config->architecture = *arch;
    *arch_given = true;
  } else if (key == "beam")
    config->beam_size = parse_number<int>(key, value);
  else if (key == "sim")
    train->similarity_weight = parse_number<double>(key, value);
  else if (key == "hidden")
    config->hidden = parse_hidden(value);
  else if (key == "epochs")
    train->epochs = parse_number<int>(key, value);
  else if (key == "warmup")
    train->warmup_epochs = parse_number<int>(key, value);
  else if (key == "batch")
    train->batch_size = parse_number<int>(key, value);
  else if (key == "lr")
    train->learning_rate = parse_number<double>(key, value);
  else if (key == "seed")
    train->seed = parse_number<std::uint64_t>(key, value);
  else if (key == "threads")
    train->threads = parse_number<int>(key, value);
  else if (key == "time")
    train->time_budget_seconds = parse_number<double>(key, value);
  else {
    FAISS_THROW_FMT(
        "semid::index_factory: unknown option '%s' (arch, latent, hidden, beam, sim, epochs, "
        "warmup, batch, lr, seed, threads, time)",
        key.c_str());
  }
}

std::unique_ptr<IndexRQVAE> make_rqvae(int d, const std::string& component,
                                       const std::vector<std::string>& options,
                                       faiss::MetricType metric) {
  static const std::regex kPattern("RQVAE([0-9]+)x([0-9]+)");
  std::smatch match;
  FAISS_THROW_IF_NOT_FMT(std::regex_match(component, match, kPattern),
                         "semid::index_factory: '%s' is not RQVAE<levels>x<bits>",
                         component.c_str());
  RqVaeConfig config;
  config.levels = parse_number<int>("levels", match[1].str());
  const int bits = parse_number<int>("bits", match[2].str());
  FAISS_THROW_IF_NOT_FMT(bits >= 1 && bits <= 16,
                         "semid::index_factory: %s: bits = %d outside [1, 16]", component.c_str(),
                         bits);
  config.codebook_size = 1 << bits;
  TrainOptions train;
  std::set<std::string> seen;
  bool arch_given = false;
  // arch= first, so that latent= only switches the architecture when arch= is absent.
  for (const std::string& option : options) {
    if (option.rfind("arch=", 0) == 0) apply_option(option, &config, &train, &arch_given);
  }
  for (const std::string& option : options) {
    FAISS_THROW_IF_NOT_FMT(seen.insert(option.substr(0, option.find('='))).second,
                           "semid::index_factory: option '%s' is given twice", option.c_str());
    if (option.rfind("arch=", 0) != 0) apply_option(option, &config, &train, &arch_given);
  }
  const Status valid = train.validate();
  FAISS_THROW_IF_NOT_FMT(valid.is_ok(), "semid::index_factory: %s", valid.to_string().c_str());
  auto index = std::make_unique<IndexRQVAE>(d, config, metric);
  index->train_options = train;
  return index;
}

}  // namespace

faiss::Index* index_factory(int d, const char* description, faiss::MetricType metric) {
  const std::vector<std::string> components = split(description, ',');
  std::size_t at = 0;
  const bool id_map = components[0] == "IDMap" || components[0] == "IDMap2";
  if (id_map) ++at;
  if (at >= components.size() || components[at].rfind("RQVAE", 0) != 0) {
    for (const std::string& component : components) {
      FAISS_THROW_IF_NOT_FMT(component.find("RQVAE") == std::string::npos,
                             "semid::index_factory: '%s': RQVAE may only come first or after "
                             "IDMap / IDMap2",
                             description);
    }
    return faiss::index_factory(d, description, metric);
  }
  auto index = make_rqvae(
      d, components[at],
      {components.begin() + static_cast<std::ptrdiff_t>(at) + 1, components.end()}, metric);
  if (!id_map) return index.release();
  std::unique_ptr<faiss::IndexIDMap> wrapper;
  if (components[0] == "IDMap2") {
    wrapper = std::make_unique<faiss::IndexIDMap2>(index.get());
  } else {
    wrapper = std::make_unique<faiss::IndexIDMap>(index.get());
  }
  wrapper->own_fields = true;
  static_cast<void>(index.release());  // the wrapper owns it now
  return wrapper.release();
}

}  // namespace semid
