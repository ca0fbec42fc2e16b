// Reading `nyto train`'s checkpoint strictly (cli/Checkpoint.h).
#include "cli/Checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/core.h>
#include <nyto/checked_load.h>
#include <nyto/errors.h>
#include <nyto/io.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace nyto::cli {

void CheckpointDigest::bytes(const void* p, size_t n) {
  h_ = fnv1a(p, n, h_);
}

void CheckpointDigest::add(const std::string& key, const c10::IValue& v) {
  bytes(key.data(), key.size() + 1);  // with its terminating NUL: keys cannot run together
  char tag = v.isString() ? 's' : v.isInt() ? 'i' : v.isDouble() ? 'd' : v.isBool() ? 'b' : v.isTensor() ? 't' : '?';
  bytes(&tag, 1);
  if (v.isString()) {
    const std::string& s = v.toStringRef();
    uint64_t n = s.size();
    bytes(&n, sizeof n);
    bytes(s.data(), s.size());
  } else if (v.isInt()) {
    int64_t i = v.toInt();
    bytes(&i, sizeof i);
  } else if (v.isDouble()) {
    double d = v.toDouble();
    bytes(&d, sizeof d);
  } else if (v.isBool()) {
    char b = v.toBool();
    bytes(&b, 1);
  } else if (v.isTensor()) {
    at::Tensor t = v.toTensor().detach().contiguous();
    int8_t dtype = int8_t(t.scalar_type());
    bytes(&dtype, 1);
    int64_t dim = t.dim();
    bytes(&dim, sizeof dim);
    for (int64_t s : t.sizes()) bytes(&s, sizeof s);
    bytes(t.data_ptr(), t.nbytes());
  }
}

std::string checkpoint_part_name(int64_t begin, int64_t end) {
  return fmt::format("members-{}-{}.pt", begin, end);
}

CheckpointWriter::CheckpointWriter() : ar_(std::make_unique<torch::serialize::OutputArchive>()) {}
CheckpointWriter::~CheckpointWriter() = default;

void CheckpointWriter::put(const std::string& key, const c10::IValue& v) {
  digest_.add(key, v);
  if (v.isTensor())
    ar_->write(key, v.toTensor());
  else
    ar_->write(key, v);
}

void CheckpointWriter::nest(const std::string& key, torch::serialize::OutputArchive& archive) {
  ar_->write(key, archive);
}

uint64_t CheckpointWriter::save(const std::string& path) {
  ar_->write("digest", c10::IValue(int64_t(digest_.value())));
  uint64_t h = kFnvOffset;
  io::write_file(path, [&](io::FileWriter& w) {
    auto out = w.function();
    try {
      ar_->save_to([&](const void* p, size_t n) {
        h = fnv1a(p, n, h);
        return out(p, n);
      });
    } catch (const c10::Error& e) {
      throw IOError("cannot write checkpoint '" + path + "': " + e.what_without_backtrace());
    }
  });
  return h;
}

namespace {

/// FNV-1a of a file's bytes; throws IOError when it cannot be read.
uint64_t file_digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IOError("cannot read '" + path + "': " + std::strerror(errno));
  uint64_t h = kFnvOffset;
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    h = fnv1a(buf.data(), size_t(in.gcount()), h);
  }
  if (in.bad()) throw IOError("cannot read '" + path + "'");
  return h;
}

/// Reads one checkpoint; every accessor throws IOError naming the file and the field.
class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {
    load_archive_checked(ar_, path, "not a readable nyto train checkpoint");
  }

  [[noreturn]] void bad(const std::string& key, const std::string& why) const {
    throw IOError("checkpoint '" + path_ + "' is corrupt: field '" + key + "' " + why);
  }
  bool has(const std::string& key) {
    c10::IValue v;
    return ar_.try_read(key, v);
  }
  c10::IValue value(const std::string& key) {
    c10::IValue v;
    if (!ar_.try_read(key, v)) bad(key, "is missing");
    return v;
  }
  std::string str(const std::string& key) {
    c10::IValue v = value(key);
    if (!v.isString()) bad(key, "is not a string");
    return v.toStringRef();
  }
  int64_t integer(const std::string& key, int64_t lo) {
    c10::IValue v = value(key);
    if (!v.isInt()) bad(key, "is not an integer");
    if (v.toInt() < lo) bad(key, fmt::format("is {}, below {}", v.toInt(), lo));
    return v.toInt();
  }
  double real(const std::string& key) {
    c10::IValue v = value(key);
    if (!v.isDouble()) bad(key, "is not a number");
    return v.toDouble();
  }
  bool boolean(const std::string& key) {
    c10::IValue v = value(key);
    if (!v.isBool()) bad(key, "is not a boolean");
    return v.toBool();
  }
  /// A tensor of `dtype` (or any floating dtype for Undefined) and, where given, `dim` dims.
  at::Tensor tensor(const std::string& key, c10::ScalarType dtype, int64_t dim = -1) {
    c10::IValue v = value(key);
    if (!v.isTensor() || !v.toTensor().defined()) bad(key, "is not a tensor");
    at::Tensor t = v.toTensor().detach();
    bool type_ok = dtype == c10::ScalarType::Undefined ? at::isFloatingType(t.scalar_type()) : t.scalar_type() == dtype;
    if (!type_ok)
      bad(key, std::string("is ") + c10::toString(t.scalar_type()) + ", not " +
                   (dtype == c10::ScalarType::Undefined ? "floating point" : c10::toString(dtype)));
    if (dim >= 0 && t.dim() != dim) bad(key, fmt::format("has {} dimensions, not {}", t.dim(), dim));
    return t;
  }
  /// A tensor shaped exactly `shape`.
  at::Tensor shaped(const std::string& key, c10::ScalarType dtype, c10::IntArrayRef shape) {
    at::Tensor t = tensor(key, dtype);
    auto dims = [](c10::IntArrayRef d) {
      std::string s;
      for (int64_t x : d) s += (s.empty() ? "" : ", ") + std::to_string(x);
      return "[" + s + "]";
    };
    if (t.sizes() != shape) bad(key, "has shape " + dims(t.sizes()) + ", not " + dims(shape));
    return t;
  }
  std::vector<double> doubles(const std::string& key, int64_t n) {
    at::Tensor t = shaped(key, at::kDouble, {n}).contiguous();
    return {t.data_ptr<double>(), t.data_ptr<double>() + n};
  }
  /// A random number engine's state, written by operator<<: the whole text must be consumed.
  void engine(const std::string& key, std::mt19937_64& rng) {
    std::istringstream in(str(key));
    in >> rng;
    if (in.fail()) bad(key, "is not a random number generator's state");
    in >> std::ws;
    if (!in.eof()) bad(key, "has text after a random number generator's state");
  }
  void check_digest() {
    CheckpointDigest d;
    for (const std::string& key : ar_.keys()) {
      c10::IValue v;
      if (key == "digest" || !ar_.try_read(key, v) || v.isObject()) continue;
      d.add(key, v);
    }
    if (uint64_t(integer("digest", INT64_MIN)) != d.value())
      throw IOError("checkpoint '" + path_ + "' is corrupt: its fields do not match their digest "
                    "(the file was changed or damaged)");
  }
  torch::serialize::InputArchive& archive() { return ar_; }

 private:
  std::string path_;
  torch::serialize::InputArchive ar_;
};

}  // namespace

namespace {

/// The fields of one part (members [b, e)), added to `ck`: its rows of x and of the rule's row
/// states (joined later), its SGD states (hybrid).
void read_part(const std::string& path, int64_t n, int64_t b, int64_t e, std::pair<int64_t, int64_t> want,
               TrainCheckpoint& ck, std::vector<std::vector<at::Tensor>>& x_rows,
               std::map<std::string, std::vector<at::Tensor>>& state_rows) {
  // The rows of [b, e) wanted: [wb, we).
  const int64_t wb = std::max(b, want.first), we = std::min(e, want.second);
  auto wanted = [&](const at::Tensor& t) { return t.narrow(0, wb - b, we - wb); };
  const bool first = x_rows.empty();
  Reader r(path);
  if (r.str("format") != kCheckpointPartFormat) r.bad("format", "is not a part of a nyto train checkpoint");
  if (r.integer("members", 1) != n) r.bad("members", "is not the manifest's member count");
  if (r.integer("begin", 0) != b || r.integer("end", 0) != e) r.bad("begin", "and 'end' are not the manifest's");
  size_t g = 0;
  for (; r.has("x_" + std::to_string(g)); ++g) {
    std::string k = "x_" + std::to_string(g);
    at::Tensor t = r.tensor(k, c10::ScalarType::Undefined, 2);
    if (t.size(0) != e - b) r.bad(k, fmt::format("has {} rows for {} members", t.size(0), e - b));
    if (!first) {
      if (g >= x_rows.size()) r.bad(k, "is a storage group the first part does not have");
      const at::Tensor& like = x_rows[g][0];
      if (t.size(1) != like.size(1) || t.scalar_type() != like.scalar_type())
        r.bad(k, "has another size or dtype than in the first part");
    }
    if (x_rows.size() <= g) x_rows.emplace_back();
    x_rows[g].push_back(wanted(t));
  }
  if (g == 0) r.bad("x_0", "is missing");
  if (g != x_rows.size()) r.bad("x_" + std::to_string(g), "is missing (the first part has it)");
  size_t states = 0;
  for (const std::string& key : r.archive().keys()) {
    if (key.rfind("state_", 0) != 0) continue;
    at::Tensor t = r.tensor(key, c10::ScalarType::Undefined);
    if (t.dim() < 1 || t.size(0) != e - b) r.bad(key, fmt::format("does not have a row for each of its {} members", e - b));
    if (!first && !state_rows.count(key)) r.bad(key, "is a state the first part does not have");
    state_rows[key].push_back(wanted(t));
    ++states;
  }
  if (states != state_rows.size()) r.bad("state_", "fields are not those of the first part");
  if (!ck.evolve)
    for (int64_t i = wb; i < we; ++i) {
      std::string k = "opt_" + std::to_string(i);
      auto ia = std::make_shared<torch::serialize::InputArchive>();
      if (!r.archive().try_read(k, *ia)) r.bad(k, "is missing");
      // LibTorch reads archives without it in its pre-1.5 format, indexing without bounds checks.
      c10::IValue version;
      if (!ia->try_read("pytorch_version", version)) r.bad(k, "is not an optimizer state of LibTorch >= 1.5");
      ck.optimizers.push_back(std::move(ia));
    }
  r.check_digest();
}

}  // namespace

TrainCheckpoint read_train_checkpoint(const std::string& path, std::pair<int64_t, int64_t> want) {
  Reader r(path);
  TrainCheckpoint ck;
  std::string format = r.str("format");
  if (format == "nyto-train-checkpoint-3")
    throw IOError("checkpoint '" + path + "' was written by an older nyto, in one file by rank 0; it cannot be "
                  "resumed (remove it, or choose another --checkpoint)");
  if (format == "nyto-train-checkpoint-2")
    throw IOError("checkpoint '" + path + "' was written by an older nyto, whose --mode pso kept other "
                  "fields than a generation rule's states; it cannot be resumed (remove it, or choose "
                  "another --checkpoint)");
  if (format == "nyto-train-checkpoint-1")
    throw IOError("checkpoint '" + path + "' was written by an older nyto, which did not record the "
                  "data set; it cannot be resumed (remove it, or choose another --checkpoint)");
  if (format == kCheckpointPartFormat)
    throw IOError("'" + path + "' is a part of a nyto train checkpoint; --resume reads DIR/checkpoint.pt");
  if (format != kCheckpointFormat) throw IOError("'" + path + "' is not a nyto train checkpoint");
  ck.config = r.str("config");
  ck.step = r.integer("step", 0);
  ck.elapsed = r.real("elapsed");
  if (!std::isfinite(ck.elapsed) || ck.elapsed < 0) r.bad("elapsed", "is not a duration");
  const int64_t n = r.integer("members", 1);
  if (n > (int64_t(1) << 40)) r.bad("members", "is too large");
  ck.members = n;
  ck.evolve = r.has("best_0");
  if (ck.evolve) {
    for (size_t g = 0; r.has("best_" + std::to_string(g)); ++g)
      ck.best.push_back(r.tensor("best_" + std::to_string(g), c10::ScalarType::Undefined, 1));
    ck.best_f = r.real("best_f");
    if (std::isnan(ck.best_f)) r.bad("best_f", "is NaN");
    ck.best_step = r.integer("best_step", -1);
    ck.states = r.str("states");
    for (const std::string& key : r.archive().keys()) {
      if (key.rfind("state_", 0) != 0) continue;
      c10::IValue v = r.value(key);
      if (!v.isDouble() && !(v.isTensor() && v.toTensor().defined() && at::isFloatingType(v.toTensor().scalar_type())))
        r.bad(key, "is neither a number nor a floating-point tensor");
      ck.state_fields.emplace(key, v.isTensor() ? c10::IValue(v.toTensor().detach()) : v);
    }
    at::Tensor fr = r.tensor("fitness_rows", at::kDouble, 2);
    if (fr.size(1) != 4) r.bad("fitness_rows", "does not have 4 columns");
    fr = fr.contiguous();
    for (int64_t i = 0; i < fr.size(0); ++i) {
      const double* q = fr.data_ptr<double>() + 4 * i;
      if (!(q[0] >= 0 && q[0] == std::floor(q[0]) && q[0] < 9e15)) r.bad("fitness_rows", "holds a bad generation");
      ck.fitness_rows.push_back({q[0], q[1], q[2], q[3]});
    }
  } else {
    ck.last_loss = r.doubles("last_loss", n);
  }
  ck.loss_sum = r.doubles("loss_sum", n);
  at::Tensor lc = r.shaped("loss_count", at::kLong, {n}).contiguous();
  ck.loss_count.assign(lc.data_ptr<int64_t>(), lc.data_ptr<int64_t>() + n);
  for (int64_t c : ck.loss_count)
    if (c < 0) r.bad("loss_count", "holds a negative count");
  if (r.boolean("has_perm")) {
    ck.perm = r.tensor("perm", at::kLong, 1);
    if (!at::equal(std::get<0>(ck.perm.sort()), at::arange(ck.perm.size(0), at::kLong)))
      r.bad("perm", "is not a permutation");
  }
  r.engine("shuffle_rng", ck.shuffle_rng);
  r.engine("subset_rng", ck.subset_rng);
  ck.torch_rng = r.tensor("torch_rng", at::kByte, 1);
  try {
    at::detail::createCPUGenerator().set_state(ck.torch_rng);
  } catch (const c10::Error&) {
    r.bad("torch_rng", "is not a state of LibTorch's CPU generator");
  }
  at::Tensor rows = r.tensor("rows", at::kDouble, 2);
  if (rows.size(1) != 5) r.bad("rows", "does not have 5 columns");
  rows = rows.contiguous();
  const double* p = rows.data_ptr<double>();
  for (int64_t i = 0; i < rows.size(0); ++i, p += 5) {
    if (!(p[0] >= 0 && p[0] == std::floor(p[0]) && p[0] < 9e15)) r.bad("rows", "holds a bad step");
    if (!(p[1] >= 0 && p[1] == std::floor(p[1]) && p[1] < double(n))) r.bad("rows", "holds a bad member");
    ck.rows.push_back({int64_t(p[0]), int64_t(p[1]), p[2], p[3], p[4]});
  }
  // The parts: a directory beside the manifest, member ranges tiling [0, n) in order, a digest each.
  ck.parts_dir = r.str("parts_dir");
  if (!std::regex_match(ck.parts_dir, std::regex("parts-[0-9a-f]{1,16}-[0-9]{1,18}"))) r.bad("parts_dir", "is not a parts directory's name");
  at::Tensor ranges = r.tensor("parts", at::kLong, 2).contiguous();
  if (ranges.size(1) != 2 || ranges.size(0) < 1 || ranges.size(0) > n) r.bad("parts", "is not a list of member ranges");
  at::Tensor digests = r.shaped("part_digests", at::kLong, {ranges.size(0)}).contiguous();
  for (int64_t k = 0, next = 0; k < ranges.size(0); ++k) {
    const int64_t b = ranges.data_ptr<int64_t>()[2 * k], e = ranges.data_ptr<int64_t>()[2 * k + 1];
    if (b != next || e <= b || e > n) r.bad("parts", "does not tile the members in order");
    ck.parts.emplace_back(b, e);
    next = e;
    if (k + 1 == ranges.size(0) && e != n) r.bad("parts", "does not tile the members in order");
  }
  r.check_digest();

  const std::string dir = (std::filesystem::path(path).parent_path() / ck.parts_dir).string();
  std::vector<std::vector<at::Tensor>> x_rows;
  std::map<std::string, std::vector<at::Tensor>> state_rows;
  // Members the checkpoint does not have are not read (the caller compares the settings first).
  want.first = std::max<int64_t>(want.first, 0);
  want.second = std::min(want.second, n);
  ck.first = want.first;
  for (size_t k = 0; k < ck.parts.size(); ++k) {
    const auto [b, e] = ck.parts[k];
    if (e <= want.first || b >= want.second) continue;
    const std::string part = dir + "/" + checkpoint_part_name(b, e);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(part, ec))
      throw IOError("checkpoint '" + path + "' is not whole: its part '" + part + "' is missing");
    if (file_digest(part) != uint64_t(digests.data_ptr<int64_t>()[k]))
      throw IOError("checkpoint '" + path + "' is corrupt: its part '" + part + "' does not match the digest the "
                    "manifest holds for it (the file was changed or damaged)");
    read_part(part, n, b, e, want, ck, x_rows, state_rows);
  }
  for (auto& rows_g : x_rows) ck.x.push_back(at::cat(rows_g, 0));
  for (auto& [key, parts] : state_rows) {
    if (ck.state_fields.count(key)) r.bad(key, "is in the manifest and in the parts");
    ck.state_fields.emplace(key, at::cat(parts, 0));
    ck.row_fields.insert(key);
  }
  if (!ck.evolve && !state_rows.empty()) r.bad(state_rows.begin()->first, "is a rule's state in a hybrid run");
  if (ck.evolve && !ck.x.empty()) {
    if (ck.best.size() != ck.x.size()) r.bad("best_0", "does not have the parts' storage groups");
    for (size_t g = 0; g < ck.x.size(); ++g)
      if (ck.best[g].size(0) != ck.x[g].size(1) || ck.best[g].scalar_type() != ck.x[g].scalar_type())
        r.bad("best_" + std::to_string(g), "has another size or dtype than the members");
  }
  return ck;
}

}  // namespace nyto::cli
