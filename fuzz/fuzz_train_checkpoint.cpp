// (c) `nyto train`'s checkpoint reader (cli/Checkpoint.h, read_train_checkpoint: what --resume
// reads) on any file as the manifest: it either returns or throws a nyto::Error. See FuzzUtil.h
// for the input format. The manifest is read whole before any part, so every field of it is
// reached; the parts it names are not there (they are read by the same strict reader, after a
// check of their bytes against the manifest's digest).
// NYTO_FUZZ_WRITE_SEEDS=DIR: writes DIR/hybrid.pt and DIR/pso.pt, the manifests of two small
// training runs (2 MLP members of 2 hidden units, batches of 4, stopped after step 1 of 2, on the
// 60,000 + 10,000 synthetic images a data set must hold).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nyto/errors.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "cli/Checkpoint.h"
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

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ::setenv("OMP_WAIT_POLICY", "passive", 1);  // else run_training re-executes the process
  at::set_num_threads(1);
  if (const char* dir = std::getenv("NYTO_FUZZ_WRITE_SEEDS")) {
    const std::string data = nyto::fuzz::scratch_dir() + "/data";
    fs::create_directories(data);
    write_idx(data + "/train-images-idx3-ubyte", true, 60000);
    write_idx(data + "/train-labels-idx1-ubyte", false, 60000);
    write_idx(data + "/t10k-images-idx3-ubyte", true, 10000);
    write_idx(data + "/t10k-labels-idx1-ubyte", false, 10000);
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
  const std::string path = nyto::fuzz::write_archive("checkpoint.pt", data, size);
  try {
    nyto::cli::read_train_checkpoint(path);
  } catch (const nyto::Error&) {
  } catch (const std::exception& e) {
    nyto::fuzz::internal_error(e, "read_train_checkpoint");
  }
  return 0;
}
