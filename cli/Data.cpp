// Reading (Fashion-)MNIST: zlib to a cache directory, then the IDX files, each checked against
// its header. (LibTorch's MNIST reader does not check that its reads succeed: a truncated file
// gave uninitialised images.)
#include "cli/Data.h"

#include <ATen/ATen.h>
#include <fmt/core.h>
#include <nyto/errors.h>
#include <nyto/io.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/Commands.h"
#include "cli/Hash.h"

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

/// The IDX file `name` (one of kFiles): an images file is [N, 28, 28] (magic 0x803), a labels file
/// [N] (magic 0x801). Reads and checks the header; `size` receives the data bytes it declares.
/// Returns "" when the header and the file's size agree, else what is wrong.
std::string idx_problem(std::istream& in, const std::string& name, std::vector<int64_t>& dims) {
  bool images = std::string(name).find("images") != std::string::npos;
  unsigned char h[16];
  size_t header = images ? 16 : 8;
  in.seekg(0, std::ios::end);
  int64_t file_size = int64_t(in.tellg());
  in.seekg(0);
  if (!in || file_size < int64_t(header) || !in.read(reinterpret_cast<char*>(h), std::streamsize(header)))
    return "it is shorter than an IDX header (" + std::to_string(header) + " bytes)";
  auto be32 = [&](int i) {
    return int64_t(h[4 * i]) << 24 | int64_t(h[4 * i + 1]) << 16 | int64_t(h[4 * i + 2]) << 8 | h[4 * i + 3];
  };
  int64_t magic = be32(0), want = images ? 0x803 : 0x801;
  if (magic != want)
    return fmt::format("its magic number is 0x{:08x}, not 0x{:08x} (an IDX {} file)", magic, want,
                       images ? "images" : "labels");
  dims = {be32(1)};
  if (images) dims.push_back(be32(2)), dims.push_back(be32(3));
  if (dims[0] < 1) return "its header declares no items";
  if (images && (dims[1] != 28 || dims[2] != 28))
    return fmt::format("its images are {}x{}, not 28x28", dims[1], dims[2]);
  int64_t data = dims[0] * (images ? 28 * 28 : 1);
  if (file_size != int64_t(header) + data)
    return fmt::format("its header declares {} {} ({} bytes of data) but it holds {} bytes of data "
                       "(truncated or padded)", dims[0], images ? "images" : "labels", data,
                       file_size - int64_t(header));
  return "";
}

/// Whether `path` is a complete IDX file `name` (its size agrees with its header).
bool idx_complete(const std::string& path, const std::string& name) {
  std::ifstream in(path, std::ios::binary);
  std::vector<int64_t> dims;
  return in && idx_problem(in, name, dims).empty();
}

// Decompresses `gz` to `out`, the IDX file `name`: the whole stream is read and checked (zlib's
// status, then the header against the size) before io::write_file puts it in the cache, so a
// truncated or corrupt stream leaves nothing there.
void gunzip(const std::string& gz, const std::string& out, const std::string& name) {
  gzFile in = gzopen(gz.c_str(), "rb");
  if (!in) throw IOError("cannot open '" + gz + "'");
  std::string data, why;
  std::vector<char> buf(1 << 20);
  for (;;) {
    int n = gzread(in, buf.data(), unsigned(buf.size()));
    if (n <= 0) break;
    data.append(buf.data(), size_t(n));
  }
  // zlib reports a stream cut short (Z_BUF_ERROR) only through gzerror and gzclose.
  int errnum = Z_OK;
  const char* zmsg = gzerror(in, &errnum);
  if (errnum == Z_BUF_ERROR) why = "unexpected end of file";
  if (why.empty() && errnum != Z_OK) {
    why = zmsg && *zmsg ? zmsg : "zlib error " + std::to_string(errnum);
    if (why.rfind(gz + ": ", 0) == 0) why = why.substr(gz.size() + 2);  // zlib prefixes the path
  }
  int closed = gzclose(in);
  if (why.empty() && closed != Z_OK) why = closed == Z_BUF_ERROR ? "unexpected end of file" : "zlib error";
  if (why.empty()) {
    std::istringstream check(data);
    std::vector<int64_t> dims;
    std::string problem = idx_problem(check, name, dims);
    if (!problem.empty()) why = "the decompressed file is not a complete IDX file: " + problem;
  }
  if (!why.empty())
    throw IOError("cannot decompress '" + gz + "': " + why + " (the file is corrupt or truncated)");
  try {
    io::write_file(out, [&](io::FileWriter& w) { w.write(data); });
  } catch (const IOError& e) {
    throw IOError(std::string(e.what()) + " (set NYTO_CACHE_DIR to a writable directory)");
  }
}

at::Tensor read_idx(const std::string& dir, const std::string& name, const std::string& shown);

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
    // A cached file that disagrees with its header (cut short by an older nyto) is made again.
    if (fs::is_regular_file(out, ec) && !idx_complete(out.string(), name)) fs::remove(out, ec);
    if (fs::is_regular_file(out, ec)) continue;
    if (fs::is_regular_file(plain, ec)) {
      if (!idx_complete(plain.string(), name)) read_idx(dir, name, dir);  // throws, naming it
      std::ifstream src(plain, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(src)), std::istreambuf_iterator<char>());
      if (!src && !src.eof()) throw IOError("cannot read '" + plain.string() + "'");
      io::write_file(out.string(), [&](io::FileWriter& w) { w.write(bytes); });
      continue;
    }
    gunzip((fs::path(dir) / (std::string(name) + ".gz")).string(), out.string(), name);
  }
  return cache.string();
}

/// The IDX file `name` of `dir` as a uint8 tensor shaped by its header ([N, 28, 28] or [N]).
/// IOError naming the file (`shown`, the user's directory) when it disagrees with its header.
at::Tensor read_idx(const std::string& dir, const std::string& name, const std::string& shown) {
  std::string path = (fs::path(dir) / name).string();
  std::string what = "'" + (fs::path(shown) / name).string() + "'" + (dir == shown ? "" : " (cached as '" + path + "')");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IOError("cannot open " + what);
  std::vector<int64_t> dims;
  std::string problem = idx_problem(in, name, dims);
  if (!problem.empty()) throw IOError(what + " is not a valid IDX file: " + problem);
  at::Tensor t = at::empty(dims, at::kByte);
  if (!in.read(reinterpret_cast<char*>(t.data_ptr<uint8_t>()), std::streamsize(t.numel())))
    throw IOError("cannot read " + what);
  return t;
}

/// One split: `images` [N, 28, 28] and `labels` [N] in [0, 10), checked against each other.
void check_split(const at::Tensor& images, const at::Tensor& labels, const std::string& dir,
                 const char* images_name, const char* labels_name) {
  std::string ifile = (fs::path(dir) / images_name).string(), lfile = (fs::path(dir) / labels_name).string();
  if (images.size(0) != labels.size(0))
    throw IOError(fmt::format("'{}' holds {} images but '{}' holds {} labels", ifile, images.size(0),
                              lfile, labels.size(0)));
  const uint8_t* l = labels.data_ptr<uint8_t>();
  for (int64_t i = 0; i < labels.numel(); ++i)
    if (l[i] >= 10)
      throw IOError(fmt::format("'{}': label {} of image {} is not a class of (Fashion-)MNIST (0 to 9)",
                                lfile, l[i], i));
}

/// FNV-1a over the bytes of `t` (contiguous uint8), eight at a time (one multiply per word: 55 MB
/// at start-up), the last few one by one.
uint64_t bytes_hash(const at::Tensor& t, uint64_t h) {
  const uint8_t* p = t.data_ptr<uint8_t>();
  int64_t n = t.numel(), i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * kFnvPrime;
  }
  return fnv1a(p + i, size_t(n - i), h);
}

}  // namespace

ImageData load_image_data(const std::string& dir) {
  std::string plain = plain_dir(dir);
  at::Tensor raw[4];
  for (int i = 0; i < 4; ++i) raw[i] = read_idx(plain, kFiles[i], dir);
  check_split(raw[0], raw[1], dir, kFiles[0], kFiles[1]);
  check_split(raw[2], raw[3], dir, kFiles[2], kFiles[3]);
  ImageData d;
  d.source = dir;
  d.digest = kFnvOffset;
  for (const auto& t : raw) d.digest = bytes_hash(t, d.digest);
  d.train = {raw[0].unsqueeze(1).to(at::kFloat).div_(255), raw[1].to(at::kLong)};
  d.test = {raw[2].unsqueeze(1).to(at::kFloat).div_(255), raw[3].to(at::kLong)};
  // Normalize both splits by the training images' mean and standard deviation.
  at::Tensor mean = d.train.images.mean(), std = d.train.images.std();
  d.train.images = ((d.train.images - mean) / std).contiguous();
  d.test.images = ((d.test.images - mean) / std).contiguous();
  return d;
}

std::vector<int64_t> parse_classes(const std::string& flag, const std::string& text) {
  auto bad = [&](const std::string& why) {
    return UsageError(flag + " " + text + ": " + why + " (classes are 0 to 9: e.g. 0-4 or 5,7,9)");
  };
  auto number = [&](const std::string& s) {
    if (s.size() != 1 || s[0] < '0' || s[0] > '9') throw bad("'" + s + "' is not a class");
    return int64_t(s[0] - '0');
  };
  std::vector<int64_t> classes;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t dash = item.find('-');
    if (dash == std::string::npos) {
      classes.push_back(number(item));
    } else {
      int64_t lo = number(item.substr(0, dash)), hi = number(item.substr(dash + 1));
      if (lo > hi) throw bad("the range " + item + " is empty");
      for (int64_t c = lo; c <= hi; ++c) classes.push_back(c);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  std::sort(classes.begin(), classes.end());
  if (std::adjacent_find(classes.begin(), classes.end()) != classes.end()) throw bad("a class is named twice");
  return classes;
}

ImageSet select_classes(const ImageSet& set, const std::vector<int64_t>& classes) {
  at::Tensor keep = at::isin(set.labels, at::tensor(classes, at::kLong)).nonzero().reshape(-1);
  return {set.images.index_select(0, keep), set.labels.index_select(0, keep)};
}

}  // namespace nyto::cli
