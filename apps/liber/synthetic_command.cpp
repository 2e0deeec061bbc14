// `liber synthetic`: the experiment on generated data whose answer is known (a text-only
// topic signal), with the oracle and the leaky upper bound beside it (liber/experiment.h).
#include <cstdio>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli.h"
#include "liber/experiment.h"
#include "report.h"

namespace liber::cli {

namespace {

struct SyntheticFlags {
  SyntheticStudyConfig study;
  std::vector<std::string> backbones;
  std::vector<uint64_t> seeds;
  std::string encoder;
  int threads = 0;
  bool no_leaky = false, no_progress = false;
};

}  // namespace

void add_synthetic_command(CLI::App& app) {
  auto f = std::make_shared<SyntheticFlags>();
  SyntheticStudyConfig& s = f->study;
  s.experiment.seeds = {1, 2, 3};
  s.experiment.all_users_baseline = false;
  CLI::App* cmd = app.add_subcommand(
      "synthetic", "content vs controls vs an oracle on generated data with a text-only signal");
  cmd->add_option("--out", s.dir, "directory for data/, store/, results/ (reused when rerun)")
      ->required();
  cmd->add_option("--users", s.data.users, "users")->capture_default_str();
  cmd->add_option("--events", s.data.events_per_user, "behaviors per user")->capture_default_str();
  cmd->add_option("--items", s.data.items, "items (each seen rarely)")->capture_default_str();
  cmd->add_option("--topics", s.data.topics, "topics (2-8)")->capture_default_str();
  cmd->add_option("--segment", s.data.mean_segment, "mean behaviors between interest drifts")
      ->capture_default_str();
  cmd->add_option("--seed", s.data.seed, "data seed")->capture_default_str();
  cmd->add_option("--partition-count", s.partition_count, "the partition rule's K")
      ->capture_default_str();
  cmd->add_option("--backbones", f->backbones,
                  fmt::format("comma-separated subset of {}", fmt::join(backbone_names(), ",")))
      ->delimiter(',');
  cmd->add_option("--seeds", f->seeds, "comma-separated training seeds (default 1,2,3)")->delimiter(',');
  cmd->add_option("--epochs", s.experiment.train.max_epochs, "max epochs")->capture_default_str();
  cmd->add_option("--query", s.experiment.fuse.query, "fuse query: item | text | both")
      ->check(CLI::IsMember({"item", "text", "both"}))
      ->capture_default_str();
  cmd->add_option("--interaction", s.experiment.fuse.interaction,
                  "fuse output also sees pooled * query (true | false)")
      ->capture_default_str();
  cmd->add_option("--similarity", s.experiment.fuse.similarity,
                  "fuse output also sees the target's cosine to each partition text (true | false)")
      ->capture_default_str();
  cmd->add_option("--encoder", f->encoder, "GGUF sentence encoder (default: all-MiniLM-L6-v2)");
  cmd->add_option("--threads", f->threads, "compute threads (0 = all cores)")->capture_default_str();
  cmd->add_flag("--no-leaky", f->no_leaky, "skip the leaky upper-bound arm");
  cmd->add_flag("--no-progress", f->no_progress, "no progress bars");
  cmd->callback([f] {
    SyntheticStudyConfig& s = f->study;
    s.leaky = !f->no_leaky;
    s.experiment.backbones = f->backbones;
    if (!f->seeds.empty()) s.experiment.seeds = f->seeds;
    s.experiment.train.threads = set_compute_threads(f->threads);
    s.experiment.train.progress = !f->no_progress;
    LlamaOptions o;
    o.model_path = f->encoder.empty() ? default_encoder_path() : f->encoder;
    o.embeddings = true;
    o.threads = f->threads;
    auto encoder = make_llama_engine(o);
    const SyntheticStudyResult r = run_synthetic_study(s, *encoder);
    const std::string md = synthetic_table(s, r);
    std::printf("\n%s", md.c_str());
    std::ofstream out(std::filesystem::path(s.dir) / "results" / "synthetic.md");
    out << md;
  });
}

}  // namespace liber::cli
