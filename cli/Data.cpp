// Reading (Fashion-)MNIST: zlib to a cache directory, then LibTorch's MNIST reader.
#include "cli/Data.h"

#include <ATen/ATen.h>
#include <nyto/errors.h>
#include <nyto/io.h>
#include <sys/stat.h>
#include <torch/data/datasets/mnist.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "cli/Commands.h"

namespace fs = std::filesystem;

namespace nyto::cli {
namespace {

const char* const kFiles[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

std::string cache_root() {
  if (const char* d = std::getenv("NYTO_CACHE_DIR"); d && *d) return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return std::string(d) + "/nyto";
  if (const char* d = std::getenv("HOME"); d && *d) return std::string(d) + "/.cache/nyto";
  return "/tmp/nyto-cache-" + std::to_string(::getuid());
}

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Decompresses `gz` to `out` with io::write_file: a failure leaves no partial file in the cache.
void gunzip(const std::string& gz, const std::string& out) {
  gzFile in = gzopen(gz.c_str(), "rb");
  if (!in) throw IOError("cannot open '" + gz + "'");
  bool read_failed = false;
  try {
    io::write_file(out, [&](io::FileWriter& w) {
      std::vector<char> buf(1 << 20);
      for (;;) {
        int n = gzread(in, buf.data(), unsigned(buf.size()));
        if (n < 0) {
          int errnum = 0;
          const char* zmsg = gzerror(in, &errnum);
          read_failed = true;
          throw IOError("cannot decompress '" + gz + "': " +
                        (errnum != Z_OK && zmsg ? zmsg : "read failed") +
                        " (the file is corrupt or truncated)");
        }
        if (n == 0) break;
        w.write(buf.data(), size_t(n));
      }
    });
  } catch (const IOError& e) {
    gzclose(in);
    if (read_failed) throw;
    throw IOError(std::string(e.what()) + " (set NYTO_CACHE_DIR to a writable directory)");
  }
  gzclose(in);
}

// The directory that holds the four plain IDX files: `dir` itself, or the cache.
std::string plain_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw UsageError("data directory '" + dir + "' does not exist; install Debian's "
                     "dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or pass "
                     "--data DIR with the (Fashion-)MNIST IDX files");
  bool all_plain = true;
  std::string key = fs::absolute(dir, ec).string();
  for (const char* name : kFiles) {
    fs::path plain = fs::path(dir) / name, gz = fs::path(dir) / (std::string(name) + ".gz");
    if (fs::is_regular_file(plain, ec)) continue;
    all_plain = false;
    if (!fs::is_regular_file(gz, ec))
      throw UsageError("data directory '" + dir + "' has no " + name + " (nor " + name +
                       ".gz); it needs the four (Fashion-)MNIST IDX files (Debian package "
                       "dataset-fashion-mnist puts them in " + kDefaultDataDir + ")");
    struct stat st {};
    ::stat(gz.c_str(), &st);
    key += "|" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtime);
  }
  if (all_plain) return dir;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a(key)));
  fs::path cache = fs::path(cache_root()) / "idx" / hex;
  fs::create_directories(cache, ec);
  if (ec) throw IOError("cannot create cache directory '" + cache.string() + "': " + ec.message());
  for (const char* name : kFiles) {
    fs::path plain = fs::path(dir) / name, out = cache / name;
    if (fs::is_regular_file(plain, ec)) {
      if (!fs::is_regular_file(out, ec)) fs::copy_file(plain, out, ec);
      continue;
    }
    if (!fs::is_regular_file(out, ec)) gunzip((fs::path(dir) / (std::string(name) + ".gz")).string(), out.string());
  }
  return cache.string();
}

ImageSet read_split(const std::string& dir, bool train, const std::string& shown) {
  using torch::data::datasets::MNIST;
  try {
    MNIST ds(dir, train ? MNIST::Mode::kTrain : MNIST::Mode::kTest);
    return {ds.images(), ds.targets()};
  } catch (const c10::Error& e) {
    throw IOError("cannot read the " + std::string(train ? "training" : "test") + " IDX files of '" +
                  shown + "' (corrupt or not MNIST format): " + e.what_without_backtrace());
  }
}

}  // namespace

ImageData load_image_data(const std::string& dir) {
  std::string plain = plain_dir(dir);
  ImageData d;
  d.source = dir;
  d.train = read_split(plain, true, dir);
  d.test = read_split(plain, false, dir);
  // Normalize both splits by the training images' mean and standard deviation.
  at::Tensor mean = d.train.images.mean(), std = d.train.images.std();
  d.train.images = ((d.train.images - mean) / std).contiguous();
  d.test.images = ((d.test.images - mean) / std).contiguous();
  return d;
}

}  // namespace nyto::cli
