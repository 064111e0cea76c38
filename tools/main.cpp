#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <exception>

#include "index/status.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  // Logs go to stderr so that stdout carries only results (JSON, tables).
  spdlog::set_default_logger(spdlog::stderr_color_mt("semid"));
  CLI::App app{
      "semid: semantic IDs for embeddings (RQ-VAE), as a FAISS index, a store and a server"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "semid 0.1.0");
  semid::tools::register_data_commands(app);
  semid::tools::register_model_commands(app);
  semid::tools::register_storage_commands(app);
  semid::tools::register_serve_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    spdlog::error("{}", semid::printable(e.what()));
    return 1;
  }
  return 0;
}
