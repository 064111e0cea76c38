// Each command group of the `semid` program registers its subcommands on the CLI11 app.
#pragma once

#include <CLI/CLI.hpp>
#include <stdexcept>
#include <utility>

#include "index/status.h"

namespace semid::tools {

// Commands report failure by throwing; main() prints the message and exits with status 1.
template <typename T>
T value_or_throw(Result<T> result) {
  if (!result) throw std::runtime_error(result.status().to_string());
  return std::move(result).value();
}

inline void throw_if_error(const Status& status) {
  if (!status) throw std::runtime_error(status.to_string());
}

// `semid convert ...`, `semid groundtruth`, `semid info`: data set preparation (data_commands.cpp).
void register_data_commands(CLI::App& app);

// `semid train`, `semid encode`, `semid eval`: semantic-ID models (model_commands.cpp).
void register_model_commands(CLI::App& app);

// `semid ingest`, `semid stats`: durable collections (storage_commands.cpp).
void register_storage_commands(CLI::App& app);

// `semid serve`: the HTTP API over a data directory (serve_command.cpp).
void register_serve_command(CLI::App& app);

}  // namespace semid::tools
