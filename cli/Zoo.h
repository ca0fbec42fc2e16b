// The model zoo of `nyto train` and the REPL: small classifiers of 28x28 grey images (MNIST,
// Fashion-MNIST), each built as the first particle of a new species.
//
//   nyto::cli::ZooOptions opts;
//   opts.hidden = 128;
//   auto p = nyto::cli::make_model("mlp", opts);
//   at::Tensor logp = nyto::cli::classify(p, images);  // [B, 10] log-probabilities
#pragma once

#include <nyto/particle.h>

#include <cstdint>
#include <string>
#include <vector>

namespace nyto::cli {

/// Options of the zoo's models (each model reads the ones it needs).
struct ZooOptions {
  int64_t hidden = 256;  ///< mlp: width of the hidden layer
};

/// One zoo entry: its name and a one-line description for help texts.
struct ZooEntry {
  std::string name;
  std::string usage;
};

/// Every model, in the order help texts list them: mlp, cnn.
const std::vector<ZooEntry>& zoo_models();
/// The names of zoo_models(), for CLI11 validators and completion.
std::vector<std::string> zoo_model_names();

/// Builds model `name` (parameters drawn from LibTorch's default generator, so torch::manual_seed
/// makes it repeatable) as the first particle of a new species. Throws nyto::Error naming the
/// known models for another name, or for options out of range (hidden
/// outside 1..kMaxHidden of cli/Limits.h).
AnyParticle make_model(const std::string& name, const ZooOptions& options = {});

/// Bytes of `particle`'s parameters: what each member of a swarm of it takes (see memory_error).
double param_bytes(const AnyParticle& particle);

/// Every zoo module implements this: images [B, 1, 28, 28] (or [B, 784]) float32 to
/// log-probabilities [B, 10].
struct Classifier {
  virtual ~Classifier() = default;
  virtual at::Tensor forward(const at::Tensor& images) = 0;
};

/// The Classifier behind a zoo particle (or any particle whose module implements Classifier).
/// Throws nyto::Error when the particle's module is not one.
Classifier& classifier(const AnyParticle& particle);
/// classifier(particle).forward(images).
at::Tensor classify(const AnyParticle& particle, const at::Tensor& images);

}  // namespace nyto::cli
