// (c) The (Fashion-)MNIST reader (cli/Data.cpp load_image_data) on any file: the input replaces
// one of the four IDX files of a valid data set (synthetic, of the 60,000 + 10,000 images
// LibTorch's MNIST reader requires), plain or gzipped (byte 0: bits 0-1 pick the
// file, bit 2 writes the rest as FILE.gz). A load either throws a nyto::Error (or UsageError) or
// gives tensors that are read in full.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nyto/errors.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli/Commands.h"
#include "cli/Data.h"
#include "fuzz/FuzzUtil.h"

namespace fs = std::filesystem;

namespace {

const char* const kFiles[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  // NYTO_FUZZ_WRITE_SEEDS=DIR: the valid files this target starts from (fuzz/make_seeds.py).
  if (const char* dir = std::getenv("NYTO_FUZZ_WRITE_SEEDS")) {
    for (int i = 0; i < 4; ++i) {
      std::string body = nyto::fuzz::idx_file(i % 2 == 0, i < 2 ? 60000 : 10000);
      std::ofstream(std::string(dir) + "/" + kFiles[i], std::ios::binary) << char(i) << body;
    }
    std::exit(0);
  }
  ::setenv("NYTO_CACHE_DIR", (nyto::fuzz::scratch_dir() + "/cache").c_str(), 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int slot = data[0] & 3;
  const bool gz = data[0] & 4;
  const std::string valid = nyto::fuzz::scratch_dir() + "/valid", dir = nyto::fuzz::scratch_dir() + "/data";
  std::error_code ec;
  if (!fs::exists(valid + "/" + kFiles[3])) {  // once per process: 55 MB
    fs::create_directories(valid);
    for (int i = 0; i < 4; ++i)
      std::ofstream(valid + "/" + kFiles[i], std::ios::binary)
          << nyto::fuzz::idx_file(i % 2 == 0, i < 2 ? 60000 : 10000);
  }
  fs::remove_all(dir, ec);
  fs::remove_all(nyto::fuzz::scratch_dir() + "/cache", ec);
  fs::create_directories(dir, ec);
  for (int i = 0; i < 4; ++i)
    if (i != slot) fs::create_hard_link(valid + "/" + kFiles[i], dir + "/" + kFiles[i]);
  nyto::fuzz::write_file(std::string("data/") + kFiles[slot] + (gz ? ".gz" : ""), data + 1, size - 1);
  volatile double sink = 0;
  try {
    nyto::cli::ImageData d = nyto::cli::load_image_data(dir);
    for (const auto* set : {&d.train, &d.test}) {
      sink = sink + set->images.sum().item<double>();
      sink = sink + double(set->labels.sum().item<int64_t>());
    }
  } catch (const nyto::Error&) {
  } catch (const nyto::cli::UsageError&) {
  } catch (const std::exception& e) {
    nyto::fuzz::internal_error(e, "load_image_data");
  }
  return 0;
}
