// Loading LibTorch archives with every tensor checked against the data the file holds for it
// (include/nyto/checked_load.h).
#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <caffe2/serialize/inline_container.h>
#include <nyto/checked_load.h>
#include <nyto/errors.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/frontend/parser.h>
#include <torch/csrc/jit/frontend/tree_views.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/serialize/input-archive.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <mutex>
#include <new>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "runtime/detail.h"

namespace nyto {
namespace {

// LibTorch 1.13's unpickler gives a storage the byte size the file's pickle declares (numel x
// item size), whatever the size of the record it reads the data from, so a storage can claim
// more bytes than it has. The archive reader allocates every record through the CPU allocator:
// while a file loads, this wrapper of that allocator notes the size of every allocation, so a
// storage's claim is checked against the memory really behind it. Installed only during a load;
// never freed, since storages made during a load keep a pointer to their allocator.
class SizeLog final : public c10::Allocator {
 public:
  explicit SizeLog(c10::Allocator* inner) : inner_(inner) {}
  c10::DataPtr allocate(size_t n) const override {
    c10::DataPtr p = inner_->allocate(n);
    std::lock_guard<std::mutex> lock(mu_);
    if (active_) sizes_[p.get()] = n;
    return p;
  }
  c10::DeleterFnPtr raw_deleter() const override { return inner_->raw_deleter(); }

  /// The size of the newest allocation at `p` during this load; false if none.
  bool size_at(const void* p, size_t& n) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sizes_.find(p);
    if (it == sizes_.end()) return false;
    n = it->second;
    return true;
  }

  /// Installs the log as LibTorch's CPU allocator for its lifetime (one load at a time).
  class Scope {
   public:
    Scope() : lock_(load_mutex()), log_(instance()) {
      log_.start();
      c10::SetCPUAllocator(&log_, kPriority);
    }
    ~Scope() {
      c10::SetCPUAllocator(log_.inner_, kPriority);
      log_.stop();
    }
    const SizeLog& log() const { return log_; }

   private:
    static constexpr uint8_t kPriority = 255;  // above any registered allocator's
    static std::mutex& load_mutex() {
      static std::mutex m;
      return m;
    }
    std::lock_guard<std::mutex> lock_;
    SizeLog& log_;
  };

 private:
  static SizeLog& instance() {
    static SizeLog* log = new SizeLog(c10::GetCPUAllocator());
    return *log;
  }
  void start() {
    std::lock_guard<std::mutex> lock(mu_);
    sizes_.clear();
    active_ = true;
  }
  void stop() {
    std::lock_guard<std::mutex> lock(mu_);
    sizes_.clear();
    active_ = false;
  }

  c10::Allocator* inner_;
  mutable std::mutex mu_;
  mutable std::unordered_map<const void*, size_t> sizes_;
  bool active_ = false;
};

std::string ints_str(c10::IntArrayRef v) { return detail::shape_str(v.vec()); }

/// The one check of a loaded tensor: dense, on the CPU, every element inside its storage, and
/// the storage no larger than the memory the file's record filled. Throws IOError naming the
/// file and the tensor.
void check_tensor(const at::Tensor& t, const std::string& file, const std::string& name,
                  const SizeLog& log) {
  if (!t.defined()) return;  // None: holds nothing
  auto bad = [&](const std::string& why) {
    throw IOError("'" + file + "' is corrupt: tensor '" + name + "' " + why);
  };
  if (t.layout() != at::kStrided || !t.has_storage())
    bad("is not a dense tensor (sparse, quantized and other layouts are not supported)");
  if (!t.device().is_cpu()) bad("is not on the CPU");
  const int64_t item = int64_t(t.dtype().itemsize());
  if (item <= 0) bad("has no element type");
  const c10::Storage& storage = t.storage();
  const size_t nbytes = storage.nbytes();
  size_t real = 0;
  if (nbytes > 0 && (!storage.data() || !log.size_at(storage.data(), real) || real < nbytes))
    bad("claims a storage of " + std::to_string(nbytes) + " bytes but the file holds " +
        (storage.data() && log.size_at(storage.data(), real) ? std::to_string(real) : "none") +
        " for it");
  c10::IntArrayRef sizes = t.sizes(), strides = t.strides();
  const int64_t offset = t.storage_offset();
  auto layout = [&] {
    return "of shape " + ints_str(sizes) + " (" + std::string(c10::toString(t.scalar_type())) +
           ", strides " + ints_str(strides) + ", storage offset " + std::to_string(offset) + ")";
  };
  if (offset < 0) bad(layout() + " has a negative storage offset");
  // The largest element index, offset + sum((size - 1) * stride), without overflow.
  int64_t numel = 1, last = offset;
  bool overflow = false;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] < 0) bad(layout() + " has a negative size");
    if (strides[d] < 0) bad(layout() + " has a negative stride");
    int64_t reach = 0;
    overflow |= __builtin_mul_overflow(numel, sizes[d], &numel);
    if (sizes[d] > 0) {
      overflow |= __builtin_mul_overflow(sizes[d] - 1, strides[d], &reach);
      overflow |= __builtin_add_overflow(last, reach, &last);
    }
  }
  int64_t bytes = 0;
  overflow |= __builtin_mul_overflow(numel, item, &bytes);
  if (overflow) bad(layout() + " is too large");
  if (numel == 0) return;  // no element is ever read
  int64_t end = 0;  // one past the last byte read
  if (__builtin_add_overflow(last, int64_t(1), &end) || __builtin_mul_overflow(end, item, &end))
    bad(layout() + " is too large");
  if (uint64_t(end) > nbytes)
    bad(layout() + " needs " + std::to_string(end) + " bytes of its storage, which holds " +
        std::to_string(nbytes));
}

/// check_tensor on every tensor reachable from `root` (tuples, lists, dicts, objects' attributes),
/// named by its path from `root_name`. Iterative, and each container once: a file's nesting and
/// shared references cannot exhaust the stack.
void check_value(const c10::IValue& root, const std::string& file, const std::string& root_name,
                 const SizeLog& log) {
  std::vector<std::pair<c10::IValue, std::string>> todo{{root, root_name}};
  std::unordered_set<const void*> seen;
  while (!todo.empty()) {
    auto [v, name] = std::move(todo.back());
    todo.pop_back();
    auto sub = [&, name = name](const std::string& key) { return name.empty() ? key : name + key; };
    if (v.isTensor()) {
      check_tensor(v.toTensor(), file, name, log);
    } else if (v.isObject()) {
      auto obj = v.toObject();
      if (!seen.insert(obj.get()).second) continue;
      auto type = obj->type();
      for (size_t i = 0; i < obj->slots().size(); ++i) {
        std::string attr = type && i < type->numAttributes() ? type->getAttributeName(i) : std::to_string(i);
        todo.emplace_back(obj->getSlot(i), name.empty() ? attr : name + "." + attr);
      }
    } else if (v.isTuple()) {
      if (!seen.insert(v.internalToPointer()).second) continue;
      const auto& elems = v.toTupleRef().elements();
      for (size_t i = 0; i < elems.size(); ++i) todo.emplace_back(elems[i], sub("[" + std::to_string(i) + "]"));
    } else if (v.isList()) {
      if (!seen.insert(v.internalToPointer()).second) continue;
      auto elems = v.toListRef();
      for (size_t i = 0; i < elems.size(); ++i) todo.emplace_back(elems[i], sub("[" + std::to_string(i) + "]"));
    } else if (v.isGenericDict()) {
      if (!seen.insert(v.internalToPointer()).second) continue;
      size_t i = 0;
      for (const auto& e : v.toGenericDict()) {
        std::string key = e.key().isString() ? e.key().toStringRef() : "#" + std::to_string(i);
        todo.emplace_back(e.key(), sub("{key " + key + "}"));
        todo.emplace_back(e.value(), sub("[" + key + "]"));
        ++i;
      }
    } else if (v.isEnum()) {
      todo.emplace_back(v.toEnumHolder()->value(), name);
    }
  }
}

/// Compiles every function of the module's code and checks its tensor constants.
void check_code(const torch::jit::Module& m, const std::string& file, const SizeLog& log) {
  for (torch::jit::Function* f : m._ivalue()->compilation_unit()->get_functions()) {
    f->ensure_defined();
    auto* gf = dynamic_cast<torch::jit::GraphFunction*>(f);
    if (!gf || !gf->graph()) continue;
    std::vector<torch::jit::Block*> blocks{gf->graph()->block()};
    while (!blocks.empty()) {
      torch::jit::Block* b = blocks.back();
      blocks.pop_back();
      for (torch::jit::Node* n : b->nodes()) {
        if (n->kind() == c10::prim::Constant)
          if (auto iv = torch::jit::toIValue(n->output()))
            check_value(*iv, file, "constant of " + f->qualname().qualifiedName(), log);
        for (torch::jit::Block* s : n->blocks()) blocks.push_back(s);
      }
    }
  }
}

/// The first line of LibTorch's message (the rest is a source excerpt or a C++ backtrace).
std::string first_line(const std::string& s) {
  std::string line = s.substr(0, s.find('\n'));
  return line.size() > 300 ? line.substr(0, 300) + "..." : line;
}

/// Runs `load` (LibTorch reading `path`) under a size log; any failure other than our own
/// nyto::Error becomes an IOError naming the file.
template <class F>
void guarded(const std::string& path, const std::string& not_what, F load) {
  std::string why;
  try {
    SizeLog::Scope scope;
    load(scope.log());
    return;
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    why = first_line(e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    why = "it declares more data than fits in memory";
  } catch (const std::exception& e) {
    why = first_line(e.what());
  } catch (...) {
    why = "unknown failure";
  }
  std::string hint;
  if (why.find("constants.pkl") != std::string::npos || why.find("code/") != std::string::npos)
    hint = "; a PyTorch file written by torch.save is not a TorchScript archive: save the model "
           "with torch.jit.save(torch.jit.script(model), path)";
  throw IOError("'" + path + "' is " + not_what + " (corrupt, truncated or another format): " + why +
                hint);
}

void check_readable(const std::string& path) {
  if (!std::ifstream(path).good())
    throw IOError("cannot open '" + path + "': no such file or not readable");
}

/// Checks the pickle `bytes` (record `record` of an archive) the way Python's pickletools reads
/// it: every opcode known, every length within the record, every line ended, every pop on a
/// stack that holds enough values above its mark, every memo read of a key written before, one
/// STOP at the end. LibTorch's unpickler trusts all of these (1.13: a BINPERSID, REDUCE or BUILD
/// on an empty stack crashed it; a string length of 2 GB in a 4 KB file allocated 2 GB before
/// reading). Values' types are not checked here: LibTorch checks those (c10::Error). Throws
/// std::runtime_error, which guarded() turns into an IOError naming the file.
void check_pickle(const std::string& record, const char* bytes, size_t size) {
  const auto* b = reinterpret_cast<const unsigned char*>(bytes);
  size_t at = 0;
  std::vector<size_t> frames{0};  // values on the stack above each mark (frames.back(): current)
  std::unordered_set<uint64_t> memo;
  auto fail = [&](size_t where, const std::string& why) {
    throw std::runtime_error("record '" + record + "' is not a valid pickle: " + why + " (byte " +
                             std::to_string(where) + ")");
  };
  auto need = [&](size_t op_at, size_t n) {
    if (frames.back() < n)
      fail(op_at, "an operation needs " + std::to_string(n) + " value(s) on the stack, it holds " +
                      std::to_string(frames.back()));
  };
  auto uint_le = [&](size_t op_at, int n) {
    if (size - at < size_t(n)) fail(op_at, "an argument runs past the end");
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t(b[at + size_t(i)]) << (8 * i);
    at += size_t(n);
    return v;
  };
  auto skip = [&](size_t op_at, uint64_t n) {
    if (n > size - at) fail(op_at, "a length of " + std::to_string(n) + " bytes runs past the end");
    at += size_t(n);
  };
  auto line = [&](size_t op_at) {
    const void* nl = std::memchr(b + at, '\n', size - at);
    if (!nl) fail(op_at, "a line is not ended");
    std::string text(bytes + at, static_cast<const char*>(nl));
    at = size_t(static_cast<const char*>(nl) - bytes) + 1;
    return text;
  };
  auto pop_mark = [&](size_t op_at) {
    if (frames.size() < 2) fail(op_at, "an operation needs a mark, there is none");
    size_t n = frames.back();
    frames.pop_back();
    return n;
  };
  // LibTorch's memo is a vector indexed by key (a key of 2^31 allocated 32 GB): picklers number
  // memo entries 0, 1, 2, ... in order, so a key past the next number is refused.
  auto put = [&](size_t op_at, uint64_t k) {
    if (k > memo.size()) fail(op_at, "a memo key out of order (" + std::to_string(k) + ")");
    memo.insert(k);
  };
  auto push = [&] { ++frames.back(); };
  auto pop = [&](size_t n) { frames.back() -= n; };
  while (at < size) {
    size_t op_at = at;
    unsigned char op = b[at++];
    switch (op) {
      case '(': frames.push_back(0); break;                                   // MARK
      case '.':                                                               // STOP
        need(op_at, 1);
        if (at != size) fail(op_at, "bytes follow the end (STOP)");
        return;
      case '0': need(op_at, 1); pop(1); break;                                // POP
      case '1': pop_mark(op_at); break;                                       // POP_MARK
      case '2': need(op_at, 1); push(); break;                                // DUP
      case 'F': case 'I': case 'L': case 'S': case 'V': case 'P':             // text arguments
        line(op_at); push(); break;
      case 'J': uint_le(op_at, 4); push(); break;                             // BININT
      case 'K': uint_le(op_at, 1); push(); break;                             // BININT1
      case 'M': uint_le(op_at, 2); push(); break;                             // BININT2
      case 'G': uint_le(op_at, 8); push(); break;                             // BINFLOAT
      case 'N': case 0x88: case 0x89:                                         // NONE, NEWTRUE/FALSE
      case '}': case ']': case ')': case 0x8f:                                // EMPTY_*
        push(); break;
      case 'Q': need(op_at, 1); break;                                        // BINPERSID
      case 'R': case 'b': case 0x81: case 'a': case 0x93:                     // REDUCE, BUILD, NEWOBJ,
        need(op_at, 2); pop(1); break;                                        // APPEND, STACK_GLOBAL
      case 0x92: need(op_at, 3); pop(2); break;                               // NEWOBJ_EX
      case 's': need(op_at, 3); pop(2); break;                                // SETITEM
      case 'T': case 'X': case 'B': skip(op_at, uint_le(op_at, 4)); push(); break;  // 4-byte length
      case 'U': case 'C': case 0x8c: skip(op_at, uint_le(op_at, 1)); push(); break; // 1-byte length
      case 0x8d: case 0x8e: skip(op_at, uint_le(op_at, 8)); push(); break;    // 8-byte length
      case 0x8a: skip(op_at, uint_le(op_at, 1)); push(); break;               // LONG1
      case 0x8b: skip(op_at, uint_le(op_at, 4)); push(); break;               // LONG4
      case 'c': line(op_at); line(op_at); push(); break;                      // GLOBAL
      case 'l': case 't': case 0x91: pop_mark(op_at); push(); break;          // LIST, TUPLE, FROZENSET
      case 'd': case 'o': case 'i': {                                         // DICT, OBJ, INST
        if (op == 'i') line(op_at), line(op_at);
        size_t n = pop_mark(op_at);
        if (op == 'd' && n % 2) fail(op_at, "a dictionary of an odd number of values");
        if (op == 'o' && n == 0) fail(op_at, "an object without a class");
        push();
        break;
      }
      case 'e': case 'u': case 0x90: {                                        // APPENDS, SETITEMS, ADDITEMS
        size_t n = pop_mark(op_at);
        if (op == 'u' && n % 2) fail(op_at, "SETITEMS of an odd number of values");
        need(op_at, 1);
        break;
      }
      case 'g': {                                                             // GET
        std::string key = line(op_at);
        char* end = nullptr;
        uint64_t k = std::strtoull(key.c_str(), &end, 10);
        if (key.empty() || *end || !memo.count(k)) fail(op_at, "a memo read of a key never written");
        push();
        break;
      }
      case 'h': case 'j':                                                     // BINGET, LONG_BINGET
        if (!memo.count(uint_le(op_at, op == 'h' ? 1 : 4))) fail(op_at, "a memo read of a key never written");
        push();
        break;
      case 'p': {                                                             // PUT
        std::string key = line(op_at);
        need(op_at, 1);
        put(op_at, std::strtoull(key.c_str(), nullptr, 10));
        break;
      }
      case 'q': case 'r': {                                                   // BINPUT, LONG_BINPUT
        uint64_t k = uint_le(op_at, op == 'q' ? 1 : 4);
        need(op_at, 1);
        put(op_at, k);
        break;
      }
      case 0x94: need(op_at, 1); memo.insert(memo.size()); break;             // MEMOIZE
      case 0x85: need(op_at, 1); break;                                       // TUPLE1
      case 0x86: need(op_at, 2); pop(1); break;                               // TUPLE2
      case 0x87: need(op_at, 3); pop(2); break;                               // TUPLE3
      case 0x80: uint_le(op_at, 1); break;                                    // PROTO
      case 0x95: uint_le(op_at, 8); break;                                    // FRAME
      case 0x82: uint_le(op_at, 1); push(); break;                            // EXT1
      case 0x83: uint_le(op_at, 2); push(); break;                            // EXT2
      case 0x84: uint_le(op_at, 4); push(); break;                            // EXT4
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", unsigned(op));
        fail(op_at, std::string("unknown opcode ") + hex);
      }
    }
  }
  fail(size, "it ends without STOP");
}

/// Checks a code record (`code/**.py`: the TorchScript source of the archive's classes) for what
/// LibTorch 1.13's importer (import_source.cpp) reads without checking that it is there: it reads
/// an absent part of a class-body statement through a null pointer (a segmentation fault, found by
/// fuzz/fuzz_models). Parses the record as that importer does and refuses, in a class body:
///   - `x = 3` (an attribute or constant without its type) in a Module, plain or NamedTuple class;
///   - `__parameters__ : T` (and `__buffers__`, `__forward_hooks__`, `__forward_pre_hooks__`) or
///     `__annotations__["x"] : T` without their value (`__annotations__ = ...` is skipped by LibTorch);
///   - `A : int` without its value in an Enum;
///   - a method without parameters in an Interface or ModuleInterface.
/// A record it cannot parse is left alone: LibTorch parses it first and reports the error itself.
/// Throws std::runtime_error, which guarded() turns into an IOError naming the file.
void check_code_record(const std::string& record, const char* data, size_t size) {
  using namespace torch::jit;
  std::string text(data, size);
  std::vector<ClassDef> classes;
  try {
    Parser p(std::make_shared<Source>(text, record, 1));
    Lexer& L = p.lexer();
    if (L.cur().kind == TK_IDENT && L.cur().text() == "op_version_set") {  // older archives
      L.next();
      L.expect('=');
      L.expect(TK_NUMBER);
      L.expect(TK_NEWLINE);
    }
    while (L.cur().kind != TK_EOF) {
      while (L.nextIf(TK_IMPORT))
        while (L.cur().kind != TK_EOF && !L.nextIf(TK_NEWLINE)) L.next();
      if (L.cur().kind == TK_CLASS_DEF)
        classes.emplace_back(p.parseClass());
      else if (L.cur().kind == TK_DEF)
        p.parseFunction(/*is_method=*/false);
      else
        return;
    }
  } catch (const std::exception&) {
    return;
  }
  for (const ClassDef& c : classes) {
    std::string super;
    if (c.superclass().present()) {
      if (c.superclass().get().kind() != TK_VAR) continue;  // LibTorch refuses it
      super = Var(c.superclass().get()).name().name();
    }
    const bool is_interface = super == "Interface" || super == "ModuleInterface";
    for (const Stmt& s : c.body()) {
      auto bad = [&](const std::string& what) {
        size_t line = 1 + size_t(std::count(text.begin(), text.begin() + std::min(s.range().start(), text.size()), '\n'));
        throw std::runtime_error("code record '" + record + "' is damaged: line " + std::to_string(line) +
                                 ", in class '" + c.name().name() + "': " + what);
      };
      if (s.kind() == TK_DEF) {
        if (is_interface && Def(s).decl().params().size() == 0) bad("a method without parameters");
        continue;
      }
      if (s.kind() != TK_ASSIGN) continue;
      Assign a(s);
      if (a.lhs_list().size() != 1) continue;  // LibTorch refuses it
      Expr lhs = a.lhs();
      std::string name = lhs.kind() == TK_VAR ? Var(lhs).name().name() : "";
      const bool has_type = a.type().present(), has_value = a.rhs().present();
      if (super == "Enum") {
        if (!has_value) bad("the enum value '" + name + "' has no value");
      } else if (super == "NamedTuple") {
        if (!has_type) bad("the field '" + name + "' has no type");
      } else if (!is_interface) {
        if (name == "__annotations__") continue;  // the importer skips it
        if (lhs.kind() == TK_SUBSCRIPT || name == "__parameters__" || name == "__buffers__" ||
            name == "__forward_hooks__" || name == "__forward_pre_hooks__") {
          if (!has_value) bad("an assignment without its value");
        } else if (lhs.kind() == TK_VAR && !has_type) {
          bad("the attribute '" + name + "' has no type");
        }
      }
    }
  }
}

/// The archive at `path` copied without its records of debug information (*.debug_pkl: source
/// ranges of the code, which LibTorch unpickles lazily, when printing a message or saving the
/// module, and trusts: a damaged one corrupts the heap). They are optional for LibTorch; nyto
/// never needs them. Through LibTorch's own zip reader and writer, the format version kept.
std::string without_debug_records(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader reader(path);
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t n) {
    out.append(static_cast<const char*>(data), n);
    return n;
  });
  writer.setMinVersion(reader.version());
  for (const std::string& name : reader.getAllRecords()) {
    if (name == "version" || c10::string_view(name).ends_with(".debug_pkl")) continue;
    auto [data, size] = reader.getRecord(name);
    if (c10::string_view(name).ends_with(".pkl")) check_pickle(name, static_cast<const char*>(data.get()), size);
    if (c10::string_view(name).starts_with("code/") && c10::string_view(name).ends_with(".py"))
      check_code_record(name, static_cast<const char*>(data.get()), size);
    writer.writeRecord(name, data.get(), size);
  }
  writer.writeEndOfFile();
  return out;
}

}  // namespace

torch::jit::Module load_module_checked(const std::string& path, const std::string& not_what) {
  check_readable(path);
  torch::jit::Module m;
  guarded(path, not_what, [&](const SizeLog& log) {
    std::istringstream in(without_debug_records(path));
    m = torch::jit::load(in, c10::Device(c10::kCPU));
    check_value(m._ivalue(), path, "", log);
    check_code(m, path, log);
  });
  return m;
}

void load_archive_checked(torch::serialize::InputArchive& ar, const std::string& path,
                          const std::string& not_what) {
  check_readable(path);
  guarded(path, not_what, [&](const SizeLog& log) {
    std::istringstream in(without_debug_records(path));
    ar.load_from(in, c10::Device(c10::kCPU));
    for (const std::string& key : ar.keys()) {
      c10::IValue v;
      if (ar.try_read(key, v)) check_value(v, path, key, log);
    }
  });
}

bool is_pickle_archive(const std::string& path) {
  try {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) return false;
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (!reader.hasRecord("data.pkl") || reader.hasRecord("constants.pkl")) return false;
    for (const std::string& name : reader.getAllRecords())
      if (c10::string_view(name).starts_with("code/")) return false;
    return true;
  } catch (...) {  // not a zip archive LibTorch reads: not a pickle archive
    return false;
  }
}

c10::IValue load_pickle_checked(const std::string& path, const std::string& not_what) {
  check_readable(path);
  c10::IValue v;
  guarded(path, not_what, [&](const SizeLog& log) {
    const std::string bytes = without_debug_records(path);
    v = torch::jit::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
    check_value(v, path, "data", log);
  });
  return v;
}

}  // namespace nyto
