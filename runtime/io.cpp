// Writing files safely (include/nyto/io.h): checked writes beside the target, renames, commits
// with rollback, and the fault-injection seam that every one of those OS calls goes through.
#include <fcntl.h>
#include <nyto/errors.h>
#include <nyto/io.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

namespace fs = std::filesystem;

namespace nyto::io {
namespace {

// ---------------------------------------------------------------- fault injection

enum Op { kOpen, kWrite, kFsync, kClose, kRename, kSwap, kOps };
constexpr const char* kOpNames[kOps] = {"open", "write", "fsync", "close", "rename", "swap"};
constexpr int kShort = -1;  // a "short" write, not an errno

struct Fault {
  Op op;
  int err;         // errno to inject, or kShort
  long at;         // the at-th call of op (1-based)
  bool and_later;  // and every later one
};

struct Seam {
  std::mutex mu;
  bool loaded = false;
  std::vector<Fault> faults;
  long calls[kOps] = {};
};

Seam& seam() {
  static Seam s;
  return s;
}

std::vector<Fault> parse_faults(const std::string& spec) {
  static const std::map<std::string, int> kinds = {
      {"enospc", ENOSPC}, {"eio", EIO},       {"edquot", EDQUOT}, {"eacces", EACCES},
      {"erofs", EROFS},   {"exdev", EXDEV}, {"einval", EINVAL}, {"short", kShort}};
  std::vector<Fault> out;
  size_t b = 0;
  while (b < spec.size()) {
    size_t e = spec.find(',', b);
    if (e == std::string::npos) e = spec.size();
    std::string item = spec.substr(b, e - b);
    b = e + 1;
    auto bad = [&](const std::string& why) {
      return Error("fault injection '" + item + "': " + why +
                   " (expected OP:KIND[@N[+]], OP open|write|fsync|close|rename|swap, KIND "
                   "enospc|eio|edquot|eacces|erofs|exdev|einval|short)");
    };
    size_t colon = item.find(':');
    if (colon == std::string::npos) throw bad("no ':'");
    Fault f{kOps, 0, 1, false};
    for (int o = 0; o < kOps; ++o)
      if (item.compare(0, colon, kOpNames[o]) == 0 && colon == std::strlen(kOpNames[o])) f.op = Op(o);
    if (f.op == kOps) throw bad("unknown operation");
    size_t at = item.find('@', colon);
    auto kind = kinds.find(item.substr(colon + 1, at == std::string::npos ? std::string::npos : at - colon - 1));
    if (kind == kinds.end()) throw bad("unknown kind");
    if (kind->second == kShort && f.op != kWrite) throw bad("only a write can be short");
    f.err = kind->second;
    if (at != std::string::npos) {
      std::string n = item.substr(at + 1);
      if (!n.empty() && n.back() == '+') f.and_later = true, n.pop_back();
      char* end = nullptr;
      f.at = n.empty() ? 0 : std::strtol(n.c_str(), &end, 10);
      if (f.at < 1 || *end) throw bad("N must be a positive integer");
    }
    out.push_back(f);
  }
  return out;
}

/// Counts a call of `op`; returns the errno (or kShort) the seam injects into it, 0 for none.
int injected(Op op) {
  Seam& s = seam();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.loaded) {
    s.loaded = true;
    const char* env = std::getenv("NYTO_FAULT");
    if (env && *env) s.faults = parse_faults(env);
  }
  long n = ++s.calls[op];
  for (const Fault& f : s.faults)
    if (f.op == op && (n == f.at || (f.and_later && n > f.at))) return f.err;
  return 0;
}

// The OS calls, each through the seam: -1 with errno set on failure, as the calls they wrap.
int fail_with(int err) {
  errno = err;
  return -1;
}

int sys_open(const std::string& path, int mode) {
  if (int e = injected(kOpen)) return fail_with(e);
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
}

ssize_t sys_write(int fd, const void* p, size_t n) {
  int e = injected(kWrite);
  if (e == kShort) return ::write(fd, p, n > 1 ? n / 2 : n);
  if (e) return fail_with(e);
  return ::write(fd, p, n);
}

int sys_fsync(int fd) {
  if (int e = injected(kFsync)) return fail_with(e);
  return ::fsync(fd);
}

int sys_close(int fd) {
  if (int e = injected(kClose)) {
    ::close(fd);
    return fail_with(e);
  }
  return ::close(fd);
}

int sys_rename(const std::string& from, const std::string& to) {
  if (int e = injected(kRename)) return fail_with(e);
  return ::rename(from.c_str(), to.c_str());
}

/// Swaps two existing entries in one step; EINVAL/ENOSYS where the file system cannot.
int sys_exchange(const std::string& a, const std::string& b) {
  if (int e = injected(kSwap)) return fail_with(e);
  return ::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE);
}

// ---------------------------------------------------------------- names

std::string strip_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

/// A new hidden name beside `target`: DIR/.NAME.nyto-tmp-PID-N.
std::string temp_beside(const std::string& target) {
  static std::atomic<unsigned> counter{0};
  fs::path t(strip_slashes(target));
  std::string name = "." + t.filename().string() + ".nyto-tmp-" + std::to_string(::getpid()) +
                     "-" + std::to_string(++counter);
  return (t.parent_path() / name).string();
}

// Staged temporary paths and the targets they stand for, so that messages name the target.
std::mutex names_mu;
std::map<std::string, std::string>& staged_names() {
  static std::map<std::string, std::string> m;
  return m;
}

}  // namespace

std::string shown_path(std::string path) {
  std::lock_guard<std::mutex> lock(names_mu);
  // A commit may stage inside another's staged entry: map until no staged name is left.
  for (bool mapped = true; mapped;) {
    mapped = false;
    for (const auto& [tmp, target] : staged_names()) {
      if (path == tmp ||
          (path.size() > tmp.size() && path.compare(0, tmp.size(), tmp) == 0 && path[tmp.size()] == '/')) {
        path = target + path.substr(tmp.size());
        mapped = true;
        break;
      }
    }
  }
  return path;
}

namespace {

IOError cannot_write(const std::string& path, int err) {
  return IOError("cannot write '" + shown_path(path) + "': " + std::strerror(err));
}

/// Flushes a directory's entries to disk; errors are ignored (some file systems refuse).
void sync_dir(const std::string& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string parent_of(const std::string& path) {
  return fs::path(strip_slashes(path)).parent_path().string();
}

void remove_quietly(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

}  // namespace

namespace testing {
void set_fault(const std::string& spec) {
  std::vector<Fault> faults = parse_faults(spec);
  Seam& s = seam();
  std::lock_guard<std::mutex> lock(s.mu);
  s.loaded = true;
  s.faults = std::move(faults);
  for (long& c : s.calls) c = 0;
}
}  // namespace testing

// ---------------------------------------------------------------- one file

void FileWriter::write(const void* data, size_t n) noexcept {
  const char* p = static_cast<const char*>(data);
  while (n > 0 && err_ == 0) {
    ssize_t w = sys_write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      err_ = w < 0 ? errno : ENOSPC;  // write() returning 0 for n > 0: no room
      break;
    }
    p += w;
    n -= size_t(w);
  }
}

std::function<size_t(const void*, size_t)> FileWriter::function() noexcept {
  return [this](const void* data, size_t n) {
    write(data, n);
    return n;
  };
}

void write_file(const std::string& path, const std::function<void(FileWriter&)>& fill) {
  std::string tmp = temp_beside(path);
  struct stat old {};
  bool replaces = ::stat(path.c_str(), &old) == 0 && S_ISREG(old.st_mode);
  int fd = sys_open(tmp, 0666);
  if (fd < 0) throw cannot_write(path, errno);
  if (replaces) ::fchmod(fd, old.st_mode & 07777);  // the new file keeps the old one's mode
  FileWriter w(fd);
  int err = 0;
  try {
    fill(w);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  err = w.error();
  if (!err && sys_fsync(fd) != 0) err = errno;
  if (sys_close(fd) != 0 && !err) err = errno;
  if (!err && sys_rename(tmp, path) != 0) err = errno;
  if (err) {
    ::unlink(tmp.c_str());
    throw cannot_write(path, err);
  }
  sync_dir(parent_of(path));
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  bool ea = ::stat(a.c_str(), &sa) == 0, eb = ::stat(b.c_str(), &sb) == 0;
  if (ea && eb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  if (ea != eb) return false;
  std::error_code ec1, ec2;
  fs::path ca = fs::weakly_canonical(fs::absolute(strip_slashes(a), ec1), ec1);
  fs::path cb = fs::weakly_canonical(fs::absolute(strip_slashes(b), ec2), ec2);
  if (ec1 || ec2) return strip_slashes(a) == strip_slashes(b);
  return strip_slashes(ca.string()) == strip_slashes(cb.string());
}

void check_writable(const std::string& path, bool dir) {
  fs::path p = fs::absolute(strip_slashes(path));
  fs::path up = p.parent_path();
  std::error_code ec;
  // A directory may be created with its missing parents: the first existing one must take it.
  while (dir && !fs::exists(up, ec) && up.has_relative_path()) up = up.parent_path();
  struct stat st {};
  if (::stat(up.c_str(), &st) != 0) throw IOError("cannot write '" + path + "': " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) throw IOError("cannot write '" + path + "': " + std::strerror(ENOTDIR));
  if (::access(up.c_str(), W_OK | X_OK) != 0)
    throw IOError("cannot write '" + path + "': " + std::strerror(errno));
}

// ---------------------------------------------------------------- several outputs

struct Commit::Entry {
  std::string target, tmp;
  bool dir = false;
  enum State { Staged, Swapped, Moved, Created } state = Staged;
  std::string aside;  ///< Moved: where the old content went
};

Commit::Commit() = default;

Commit::~Commit() {
  std::lock_guard<std::mutex> lock(names_mu);
  for (const Entry& e : entries_) {
    staged_names().erase(e.tmp);
    // Staged: the new content, never put in place; after a commit: the old content.
    if (!e.tmp.empty() && (!committed_ || e.state == Entry::Swapped)) remove_quietly(e.tmp);
    if (committed_ && e.state == Entry::Moved) remove_quietly(e.aside);
  }
}

std::string Commit::stage(const std::string& target, bool dir) {
  for (const Entry& e : entries_)
    if (same_file(e.target, target))
      throw IOError("cannot write '" + target + "': '" + e.target +
                    "' is the same file and is written too");
  std::error_code ec;
  fs::file_status st = fs::symlink_status(strip_slashes(target), ec);
  if (fs::exists(st)) {
    bool is_dir = fs::is_directory(fs::status(target, ec));
    if (is_dir && !dir) throw IOError("cannot write '" + target + "': " + std::strerror(EISDIR));
    if (!is_dir && dir) throw IOError("cannot write '" + target + "': it exists and is not a directory");
  }
  Entry e{strip_slashes(target), temp_beside(target), dir};
  if (dir && ::mkdir(e.tmp.c_str(), 0777) != 0) throw cannot_write(target, errno);
  {
    std::lock_guard<std::mutex> lock(names_mu);
    staged_names()[e.tmp] = e.target;
  }
  entries_.push_back(e);
  return e.tmp;
}

void Commit::commit() {
  if (committed_) throw Error("Commit::commit called twice");
  for (const Entry& e : entries_) {
    if (!e.dir) continue;
    sync_dir(e.tmp);
    if (!fs::is_directory(e.tmp)) throw IOError("cannot write '" + e.target + "': its staged directory is gone");
  }
  size_t done = 0;
  int err = 0;
  std::string failed;
  for (; done < entries_.size(); ++done) {
    Entry& e = entries_[done];
    failed = e.target;
    struct stat st {};
    if (::lstat(e.target.c_str(), &st) != 0) {
      if (sys_rename(e.tmp, e.target) != 0) err = errno;
      else e.state = Entry::Created;
    } else if (::stat(e.target.c_str(), &st) == 0 && S_ISDIR(st.st_mode) != e.dir) {
      err = e.dir ? ENOTDIR : EISDIR;  // changed since it was staged
    } else if (sys_exchange(e.tmp, e.target) == 0) {
      e.state = Entry::Swapped;  // e.tmp holds the old content now
    } else if (errno == EINVAL || errno == ENOSYS) {
      // No exchange on this file system: move the old content aside, then put the new in place.
      std::string aside = temp_beside(e.target);
      if (sys_rename(e.target, aside) != 0) {
        err = errno;
      } else if (sys_rename(e.tmp, e.target) != 0) {
        err = errno;
        if (sys_rename(aside, e.target) != 0) {
          e.aside = aside, e.state = Entry::Moved;  // the rollback below reports it
          ++done;
        }
      } else {
        e.aside = aside, e.state = Entry::Moved;
      }
    } else {
      err = errno;
    }
    if (err) break;
  }
  if (!err) {
    committed_ = true;
    for (const Entry& e : entries_) sync_dir(parent_of(e.target));
    return;
  }
  // Roll back what is in place already, last first.
  std::string lost;
  for (size_t i = done; i-- > 0;) {
    Entry& e = entries_[i];
    bool ok = true;
    if (e.state == Entry::Swapped) {
      ok = sys_exchange(e.tmp, e.target) == 0;
      if (!ok) lost += "; the old '" + e.target + "' is kept as '" + e.tmp + "'";
    } else if (e.state == Entry::Created) {
      ok = sys_rename(e.target, e.tmp) == 0;
      if (!ok) remove_quietly(e.target);
    } else if (e.state == Entry::Moved) {
      // The new content goes back to its staged name (a directory cannot be renamed over).
      ok = (sys_rename(e.target, e.tmp) == 0 || errno == ENOENT) && sys_rename(e.aside, e.target) == 0;
      if (!ok) lost += "; the old '" + e.target + "' is kept as '" + e.aside + "'";
    }
    if (!ok && e.state == Entry::Swapped) {  // keep the old content where it is
      std::lock_guard<std::mutex> lock(names_mu);
      staged_names().erase(e.tmp);
      e.tmp.clear();
    }
    e.state = Entry::Staged;
  }
  for (const Entry& e : entries_) sync_dir(parent_of(e.target));
  throw IOError("cannot write '" + failed + "': " + std::strerror(err) +
                (lost.empty() ? std::string(entries_.size() > 1 ? "; no output was changed" : "")
                              : lost));
}

}  // namespace nyto::io
