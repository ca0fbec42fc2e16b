// (c) `nyto train --resume` on any checkpoint file (cli/Train.cpp): a small training run (2 MLP
// members of 2 hidden units, batches of 4, 2 steps, on the 60,000 + 10,000 synthetic images that
// LibTorch's MNIST reader requires) resumes from the input as its checkpoint.pt. Mode pso when
// the input contains "mode=pso", else hybrid (the checkpoint's settings must match the run's for
// the load to go further). The run either throws a nyto::Error
// or UsageError, or completes. See FuzzUtil.h for the input format.
//
// The load goes through the whole run because the checkpoint reader is not callable on its own
// yet: when it is, call it from load_training_checkpoint() below instead.
// NYTO_FUZZ_WRITE_SEEDS=DIR: writes DIR/hybrid.pt and DIR/pso.pt, checkpoints of these runs.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nyto/errors.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "cli/Commands.h"
#include "cli/Train.h"
#include "fuzz/FuzzUtil.h"

namespace fs = std::filesystem;

namespace {

void write_idx(const std::string& path, bool images, uint32_t n) {
  std::ofstream(path, std::ios::binary) << nyto::fuzz::idx_file(images, n);
}

nyto::cli::TrainOptions options(bool pso, const std::string& checkpoint_dir, bool resume) {
  nyto::cli::TrainOptions o;
  o.hidden = 2;
  o.mode = pso ? "pso" : "hybrid";
  o.particles = 2;
  o.epochs = 1;
  o.batch_size = 4;
  o.swarm_every = 1;
  o.swarm_size = 2;
  o.threads = 1;
  o.eval_every = 1;
  o.eval_size = 4;
  o.fitness_size = 4;
  o.batches = 2;
  o.data = nyto::fuzz::scratch_dir() + "/data";
  o.checkpoint = checkpoint_dir;
  o.resume = resume;
  return o;
}

// The switch point: today the whole run (Trainer::load_checkpoint is private to cli/Train.cpp).
void load_training_checkpoint(bool pso, const std::string& dir) {
  nyto::cli::run_training(options(pso, dir, true));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ::setenv("OMP_WAIT_POLICY", "passive", 1);  // else run_training re-executes the process
  at::set_num_threads(1);
  const std::string data = nyto::fuzz::scratch_dir() + "/data";
  fs::create_directories(data);
  write_idx(data + "/train-images-idx3-ubyte", true, 60000);
  write_idx(data + "/train-labels-idx1-ubyte", false, 60000);
  write_idx(data + "/t10k-images-idx3-ubyte", true, 10000);
  write_idx(data + "/t10k-labels-idx1-ubyte", false, 10000);
  if (const char* dir = std::getenv("NYTO_FUZZ_WRITE_SEEDS")) {
    for (bool pso : {false, true}) {
      std::string ck = nyto::fuzz::scratch_dir() + "/seed";
      auto o = options(pso, ck, false);
      o.batches = 1;  // stop after step 1 of 2: the checkpoint is mid-run
      nyto::cli::run_training(o);
      fs::copy_file(ck + "/checkpoint.pt", std::string(dir) + (pso ? "/pso.pt" : "/hybrid.pt"),
                    fs::copy_options::overwrite_existing);
      fs::remove_all(ck);
    }
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string marker = "mode=pso";
  const bool pso = std::search(data, data + size, marker.begin(), marker.end()) != data + size;
  const std::string dir = nyto::fuzz::scratch_dir() + "/ck";
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  nyto::fuzz::write_archive("ck/checkpoint.pt", data, size);
  try {
    load_training_checkpoint(pso, dir);
  } catch (const nyto::Error&) {
  } catch (const nyto::cli::UsageError&) {
  } catch (const std::exception& e) {
    nyto::fuzz::internal_error(e, "nyto train --resume");
  }
  return 0;
}
