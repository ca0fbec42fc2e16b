// nyto eval --model mlp|cnn [--hidden H] [--data DIR] [--subset CLASSES]... [--csv FILE]
//           [--threads N] FILE...
//
// Tests saved models on the whole test set of (Fashion-)MNIST and prints one table: per model,
// the accuracy overall, on each --subset of the classes and on each class. A FILE is what
// `nyto run --load` reads: a nyto checkpoint or a TorchScript archive (one model), a nyto swarm
// checkpoint or a directory of model files (one row per member). Every file is loaded and
// checked against the zoo model before any is tested: a file of another structure is a
// ShapeError naming the first differing parameter (exit 2), a missing or corrupt file an IOError
// (exit 1).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <nyto/any_module.h>
#include <nyto/errors.h>
#include <nyto/io.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/Commands.h"
#include "cli/Data.h"
#include "cli/Limits.h"
#include "cli/Train.h"
#include "cli/Zoo.h"

namespace nyto::cli {
namespace {

struct EvalArgs {
  std::string model = "mlp";
  int64_t hidden = 0;  // 0: read from the files (mlp)
  std::string data;
  std::vector<std::string> subsets;
  std::string csv;
  int threads = 0;
  std::vector<std::string> files;
};

// One model to test: its row label and its parameters.
struct Entry {
  std::string label;
  AnyParticle particle;
};

std::vector<Entry> load_entries(const std::vector<std::string>& files) {
  std::vector<Entry> entries;
  for (const std::string& f : files) {
    LoadedModels m = load_models(f);
    if (!m.is_swarm()) {
      entries.push_back({f, m.particle});
      continue;
    }
    for (int64_t i = 0; i < m.swarm.size(); ++i) {
      std::string label = m.members.empty() ? fmt::format("{}[{}]", f, i)
                                            : (std::filesystem::path(f) / m.members[size_t(i)]).string();
      entries.push_back({label, m.swarm.member(i)});
    }
  }
  return entries;
}

// mlp's hidden width from a file's parameters: the rows of its [H, 784] weight.
int64_t hidden_of(const Entry& e) {
  for (const ParamInfo& p : e.particle.params())
    if (p.shape.size() == 2 && p.shape[1] == 784) return p.shape[0];
  throw UsageError(e.label + " has no [H, 784] weight, so it is not an mlp of the zoo; give --model (and --hidden)");
}

void run_eval(const EvalArgs& a) {
  std::vector<std::vector<int64_t>> subsets;
  for (const std::string& s : a.subsets) subsets.push_back(parse_classes("--subset", s));
  // Everything is read and checked first: a bad file fails the command before any test.
  std::vector<Entry> entries = load_entries(a.files);
  ZooOptions zo;
  if (a.model == "mlp") zo.hidden = a.hidden > 0 ? a.hidden : hidden_of(entries.front());
  const AnyParticle zoo = make_model(a.model, zo);
  std::vector<AnyParticle> nets;
  for (const Entry& e : entries) {
    try {
      nets.push_back(zoo.clone_from(e.particle));
    } catch (const ShapeError& err) {
      throw ShapeError(e.label + " is not " + std::string(a.model == "mlp" ? "an " : "a ") + a.model +
                       (a.model == "mlp" ? " with hidden width " + std::to_string(zo.hidden) : std::string()) +
                       " of the zoo: " + err.what());
    }
  }
  at::set_num_threads(a.threads > 0 ? a.threads : int(std::max(1u, std::thread::hardware_concurrency())));
  const ImageData data = load_image_data(a.data.empty() ? kDefaultDataDir : a.data);
  const ImageSet& test = data.test;
  // Images per class in the test set (1,000 each for Fashion-MNIST).
  const at::Tensor per_class = at::bincount(test.labels, {}, 10);

  std::vector<std::string> heads = {"all"};
  for (const std::string& s : a.subsets) heads.push_back(s);
  for (int c = 0; c < 10; ++c) heads.push_back("class " + std::to_string(c));
  size_t label_width = 5;
  for (const Entry& e : entries) label_width = std::max(label_width, e.label.size());
  std::string table = fmt::format("{:<{}}", "model", label_width);
  for (const std::string& h : heads) table += fmt::format("  {:>{}}", h, std::max<size_t>(6, h.size()));
  table += "\n";
  std::string csv = "model";
  for (const std::string& h : heads) csv += "," + h;
  csv += "\n";

  for (size_t i = 0; i < entries.size(); ++i) {
    const TestResult r = test_classifier(classifier(nets[i]), test, test.size());
    const std::vector<int64_t>& correct = r.correct_per_class;
    std::vector<double> values = {double(r.correct) / double(r.images)};
    for (const auto& s : subsets) {
      int64_t hit = 0, n = 0;
      for (int64_t c : s) hit += correct[size_t(c)], n += per_class[c].item<int64_t>();
      values.push_back(n ? double(hit) / double(n) : 0.0);
    }
    for (int64_t c = 0; c < 10; ++c) {
      const int64_t n = per_class[c].item<int64_t>();
      values.push_back(n ? double(correct[size_t(c)]) / double(n) : 0.0);
    }
    table += fmt::format("{:<{}}", entries[i].label, label_width);
    csv += entries[i].label;
    for (size_t k = 0; k < values.size(); ++k) {
      table += fmt::format("  {:>{}.4f}", values[k], std::max<size_t>(6, heads[k].size()));
      csv += fmt::format(",{:.4f}", values[k]);
    }
    table += "\n";
    csv += "\n";
  }
  if (!a.csv.empty()) io::write_file(a.csv, [&](io::FileWriter& w) { w.write(csv); });
  std::cout << "test set: " << test.size() << " images of " << data.source << "\n" << table;
}

}  // namespace

void add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Test saved models on the (Fashion-)MNIST test set: accuracy overall, per class subset, per class");
  cmd->add_option("--model", a->model, "the zoo model the files hold: mlp (784-H-10) or cnn")
      ->check(CLI::IsMember(zoo_model_names()))
      ->capture_default_str();
  cmd->add_option("--hidden", a->hidden, "mlp: hidden width (default: read from the files)")
      ->check(in_interval(integers(1, kMaxHidden)));
  cmd->add_option("--subset", a->subsets, "a column for these classes, e.g. 0-4 or 5,7,9 (repeatable)")
      ->allow_extra_args(false);  // one value per --subset: the files follow
  cmd->add_option("--data", a->data,
                  "directory of the (Fashion-)MNIST IDX files, gzipped or not (default: /usr/share/datasets/fashion-mnist)");
  cmd->add_option("--csv", a->csv, "also write the table to this CSV file");
  cmd->add_option("--threads", a->threads, "LibTorch threads (default: every core; at most 4 per core)")
      ->check(threads_validator());
  cmd->add_option("files", a->files,
                  "models: nyto or TorchScript files, nyto swarm checkpoints or directories of model files")
      ->required();
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace nyto::cli
