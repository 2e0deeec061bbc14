// liber — lifelong user behavior modeling with LLMs. A thin CLI over the library.
#include <cstdio>

#include <CLI/CLI.hpp>

#include "cli.h"
#include "liber/error.h"

int main(int argc, char** argv) {
  CLI::App app{"liber: LLM-based lifelong user behavior modeling (LIBER)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "liber 0.1.0");
  liber::cli::add_data_command(app);
  liber::cli::add_train_command(app);
  liber::cli::add_export_command(app);
  liber::cli::add_ingest_command(app);
  liber::cli::add_partitions_command(app);
  liber::cli::add_learn_command(app);
  liber::cli::add_encode_command(app);
  liber::cli::add_experiment_command(app);
  liber::cli::add_migrate_command(app);
  liber::cli::add_synthetic_command(app);
  liber::cli::add_serve_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const liber::cli::StoppedByRequest&) {
    return 130;
  } catch (const liber::Error& e) {
    std::fprintf(stderr, "liber: error (%s): %s\n", liber::to_string(e.kind()), e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "liber: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
