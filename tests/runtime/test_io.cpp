// Safe writes (include/nyto/io.h): write_file, Commit with rollback, same_file, check_writable,
// and every failure the fault-injection seam can make: the target keeps its old content, no
// temporary entry is left, and the message names the target and the OS's reason.
#include "tests/doctest_torch.h"
#include <nyto/any_module.h>
#include <nyto/io.h>
#include <nyto/nyto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "tests/runtime/models.h"

namespace fs = std::filesystem;
namespace io = nyto::io;

namespace {
struct Scratch {
  fs::path path;
  Scratch() {
    char tmpl[] = "/tmp/nyto-io-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~Scratch() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  /// Every entry under the directory (hidden ones too) with the contents of files.
  std::map<std::string, std::string> snapshot() const {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(path)) {
      std::string rel = fs::relative(e.path(), path).string();
      if (e.is_directory()) {
        out[rel + "/"] = "";
      } else {
        std::ifstream f(e.path(), std::ios::binary);
        std::stringstream s;
        s << f.rdbuf();
        out[rel] = s.str();
      }
    }
    return out;
  }
};

/// Sets a fault for the scope, cleared at its end.
struct IoFault {
  explicit IoFault(const std::string& spec) { io::testing::set_fault(spec); }
  ~IoFault() { io::testing::set_fault(""); }
};

void put(const std::string& path, const std::string& text) {
  io::write_file(path, [&](io::FileWriter& w) { w.write(text); });
}

std::string text_of(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const nyto::IOError& e) {
    return e.what();
  }
  return "(no IOError)";
}
}  // namespace

TEST_CASE("write_file writes, replaces, keeps the old mode, and leaves nothing beside") {
  Scratch s;
  put(s / "a.txt", "one");
  CHECK(text_of(s / "a.txt") == "one");
  ::chmod((s / "a.txt").c_str(), 0600);
  put(s / "a.txt", "two");
  CHECK(text_of(s / "a.txt") == "two");
  struct stat st {};
  ::stat((s / "a.txt").c_str(), &st);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(s.snapshot() == std::map<std::string, std::string>{{"a.txt", "two"}});
  {
    IoFault f("write:short@1+");  // every write() call writes half: the writer resumes
    put(s / "b.txt", std::string(1000, 'x'));
  }
  CHECK(text_of(s / "b.txt") == std::string(1000, 'x'));
}

TEST_CASE("write_file: every injected failure keeps the old file and names target and reason") {
  Scratch s;
  put(s / "keep.txt", "old");
  const auto before = s.snapshot();
  struct Case {
    std::string spec, reason;
  } cases[] = {{"open:eacces", "Permission denied"},     {"write:enospc", "No space left on device"},
               {"write:short,write:enospc@2", "No space left on device"},
               {"write:short,write:eio@2+", "Input/output error"},   {"fsync:eio", "Input/output error"},
               {"close:edquot", "Disk quota exceeded"},  {"rename:exdev", "Invalid cross-device link"}};
  for (const auto& c : cases) {
    INFO(c.spec);
    IoFault f(c.spec);
    std::string msg = message_of([&] { put(s / "keep.txt", "new content"); });
    CHECK(msg == "cannot write '" + (s / "keep.txt") + "': " + c.reason);
    CHECK(s.snapshot() == before);
  }
  // A missing directory: the OS's reason, no temporary name.
  CHECK(message_of([&] { put(s / "no/such/f.txt", "x"); }) ==
        "cannot write '" + (s / "no/such/f.txt") + "': No such file or directory");
  // An exception of the writer's own passes through; the temporary file goes.
  CHECK_THROWS_WITH_AS(io::write_file(s / "keep.txt", [](io::FileWriter&) { throw nyto::Error("mine"); }),
                       "mine", nyto::Error);
  CHECK(s.snapshot() == before);
  CHECK_THROWS_WITH_AS(io::testing::set_fault("write:sometimes"), doctest::Contains("unknown kind"), nyto::Error);
  CHECK_THROWS_WITH_AS(io::testing::set_fault("fsync:short"), doctest::Contains("only a write"), nyto::Error);
  CHECK_THROWS_WITH_AS(io::testing::set_fault("write:eio@0"), doctest::Contains("positive"), nyto::Error);
}

TEST_CASE("LibTorch archives: a failed write is an IOError, never an abort, and changes nothing") {
  Scratch s;
  torch::manual_seed(1);
  auto net = nyto::make_particle<NetImpl>();
  net.save(s / "net.pt");
  nyto::AnySwarm swarm(nyto::AnyParticle(net), 3);
  swarm.save(s / "swarm.pt");
  const auto before = s.snapshot();
  nyto::AnyParticle other(net + 1.0);
  // Every write of the archive in turn: PytorchStreamWriter never sees a failure (it aborted the
  // process when one came while it wrote the archive's central directory).
  int n = 1;
  for (;; ++n) {
    INFO("write " << n);
    std::string msg;
    {
      IoFault f("write:enospc@" + std::to_string(n) + "+");
      msg = message_of([&] { other.save(s / "net.pt"); });
    }
    if (msg == "(no IOError)") {  // the archive needs fewer writes: it was written
      net.save(s / "net.pt");
      break;
    }
    CHECK(msg == "cannot write '" + (s / "net.pt") + "': No space left on device");
    CHECK(s.snapshot() == before);
  }
  CHECK(n > 5);
  for (n = 1;; ++n) {
    INFO("write " << n);
    std::string msg;
    {
      IoFault f("write:eio@" + std::to_string(n));
      msg = message_of([&] { nyto::AnySwarm(nyto::AnyParticle(other), 3).save(s / "swarm.pt"); });
    }
    if (msg == "(no IOError)") {
      swarm.save(s / "swarm.pt");
      break;
    }
    CHECK(msg == "cannot write '" + (s / "swarm.pt") + "': Input/output error");
    CHECK(s.snapshot() == before);
  }
  CHECK(n > 5);
  CHECK(s.snapshot() == before);  // archives are written byte for byte the same
}

TEST_CASE("same_file: one file under any spelling") {
  Scratch s;
  put(s / "a.pt", "x");
  fs::create_directory(s / "d");
  fs::create_symlink(s / "a.pt", s / "link.pt");
  CHECK(io::same_file(s / "a.pt", s / "d/../a.pt"));
  CHECK(io::same_file(s / "a.pt", s / "link.pt"));
  CHECK(io::same_file(s / "new.pt", s / "./d/../new.pt"));  // neither exists
  CHECK(io::same_file(s / "out", s / "out/"));
  CHECK_FALSE(io::same_file(s / "a.pt", s / "new.pt"));
  CHECK_FALSE(io::same_file(s / "a.pt", s / "d/a.pt"));
  char cwd[4096];
  REQUIRE(::getcwd(cwd, sizeof cwd));
  REQUIRE(::chdir(s.path.c_str()) == 0);
  CHECK(io::same_file("keep.pt", s / "keep.pt"));
  REQUIRE(::chdir(cwd) == 0);
}

TEST_CASE("check_writable: the directory that will receive the file") {
  Scratch s;
  io::check_writable(s / "f.txt");
  io::check_writable(s / "new/deeper/dir", true);  // created later with its parents
  CHECK(message_of([&] { io::check_writable(s / "no/f.txt"); }) ==
        "cannot write '" + (s / "no/f.txt") + "': No such file or directory");
  put(s / "file", "x");
  CHECK(message_of([&] { io::check_writable(s / "file/f.txt"); }) ==
        "cannot write '" + (s / "file/f.txt") + "': Not a directory");
  CHECK(message_of([&] { io::check_writable(s / "file/sub/dir", true); }) ==
        "cannot write '" + (s / "file/sub/dir") + "': Not a directory");
}

TEST_CASE("Commit: all outputs or none; a failure at any step rolls back what was replaced") {
  Scratch s;
  put(s / "a.txt", "old a");
  put(s / "b.txt", "old b");
  fs::create_directory(s / "dir");
  put(s / "dir/m1", "old m1");
  put(s / "dir/stale", "old stale");
  const auto before = s.snapshot();
  auto stage_all = [&](io::Commit& c) {
    put(c.stage(s / "a.txt"), "new a");
    put(c.stage(s / "c.txt"), "new c");  // a new file
    std::string d = c.stage(s / "dir", true);
    put(d + "/m1", "new m1");
    put(c.stage(s / "b.txt"), "new b");
  };
  // Staging writes 4 files (renames 1-4); the commit swaps a (swap 1), renames c into place
  // (rename 5), swaps dir (swap 2) and b (swap 3); with swaps refused (einval) it moves each old
  // content aside first: a (renames 5, 6), c (7), dir (8, 9), b (10, 11).
  for (const std::string spec : {"swap:eio@1", "rename:eio@5", "swap:eio@2", "swap:eio@3",
                                 "swap:einval@1+,rename:eio@9", "swap:einval@1+,rename:eio@11",
                                 "swap:einval@1+,rename:eio@10", "write:enospc@3"}) {
    INFO(spec);
    IoFault f(spec);
    std::string msg = message_of([&] {
      io::Commit c;
      stage_all(c);
      c.commit();
    });
    CHECK(msg.find("cannot write '" + s.path.string() + "/") == 0);
    CHECK((msg.find("Input/output error") != std::string::npos ||
           msg.find("No space left on device") != std::string::npos ||
           msg.find("Invalid argument") != std::string::npos));
    CHECK(s.snapshot() == before);
  }
  {
    io::Commit c;
    stage_all(c);
    c.commit();
  }
  CHECK(s.snapshot() == std::map<std::string, std::string>{{"a.txt", "new a"}, {"b.txt", "new b"},
                                                            {"c.txt", "new c"}, {"dir/", ""},
                                                            {"dir/m1", "new m1"}});
}

TEST_CASE("Commit: a rollback that fails says where the old content is kept") {
  Scratch s;
  put(s / "a.txt", "old a");
  put(s / "b.txt", "old b");
  IoFault f("swap:eio@2+");  // the commit swaps a, then every swap fails: b's and the rollback's
  io::Commit c;
  put(c.stage(s / "a.txt"), "new a");
  put(c.stage(s / "b.txt"), "new b");
  std::string msg = message_of([&] { c.commit(); });
  CHECK(msg.find("cannot write '" + (s / "b.txt") + "': Input/output error; the old '" +
                 (s / "a.txt") + "' is kept as '" + s.path.string() + "/.a.txt.nyto-tmp-") == 0);
  std::string kept = msg.substr(msg.find("is kept as '") + 12);
  kept.pop_back();
  CHECK(text_of(kept) == "old a");
  CHECK(text_of(s / "b.txt") == "old b");
}

TEST_CASE("Commit: one target under two spellings, or of the wrong kind, is refused") {
  Scratch s;
  fs::create_directory(s / "d");
  io::Commit c;
  c.stage(s / "keep.pt");
  CHECK(message_of([&] { c.stage(s / "d/../keep.pt"); }) ==
        "cannot write '" + (s / "d/../keep.pt") + "': '" + (s / "keep.pt") +
            "' is the same file and is written too");
  CHECK(message_of([&] { c.stage(s / "d"); }) == "cannot write '" + (s / "d") + "': Is a directory");
  put(s / "f", "x");
  CHECK(message_of([&] { c.stage(s / "f", true); }) ==
        "cannot write '" + (s / "f") + "': it exists and is not a directory");
}

TEST_CASE("Commit: messages name the target, not the staged temporary path") {
  Scratch s;
  io::Commit c;
  std::string d = c.stage(s / "swarm", true);
  IoFault f("write:enospc");
  CHECK(message_of([&] { put(d + "/m.pt", "x"); }) ==
        "cannot write '" + (s / "swarm") + "/m.pt': No space left on device");
}

TEST_CASE("save_swarm_dir replaces a swarm directory as a whole, or refuses another directory") {
  Scratch s;
  torch::manual_seed(2);
  auto mixed = nyto::AnyParticle(nyto::make_particle<MixedImpl>());
  nyto::AnySwarm old(mixed, 5);
  nyto::save_swarm_dir(old, s / "pop", {}, nyto::Format::Nyto);
  auto net = nyto::AnyParticle(nyto::make_particle<NetImpl>());
  nyto::AnySwarm fresh(net, 3, nyto::SwarmInit::Randn);
  const auto before = s.snapshot();
  REQUIRE(before.size() == 6);
  // A failure while writing the members, or while swapping the directory, keeps the old one.
  for (const std::string spec : {"write:enospc@3+", "fsync:eio@2", "swap:eio@1"}) {
    INFO(spec);
    IoFault f(spec);
    CHECK(message_of([&] { nyto::save_swarm_dir(fresh, s / "pop", {}, nyto::Format::Nyto); })
              .find("cannot write '" + (s / "pop")) == 0);
    CHECK(s.snapshot() == before);
  }
  // The 5 members of another structure are gone: the directory loads as the new swarm.
  nyto::save_swarm_dir(fresh, s / "pop", {}, nyto::Format::Nyto);
  std::vector<std::string> names;
  nyto::AnySwarm back = nyto::load_swarm(s / "pop", &names);
  CHECK(names == std::vector<std::string>{"member-000.pt", "member-001.pt", "member-002.pt"});
  CHECK(at::equal(back.storage()[0], fresh.storage()[0]));
  // A directory that is not a swarm is refused, untouched.
  fs::create_directory(s / "notes");
  put(s / "notes/readme.txt", "mine");
  auto notes = s.snapshot();
  CHECK(message_of([&] { nyto::save_swarm_dir(fresh, s / "notes", {}, nyto::Format::Nyto); }) ==
        "cannot write swarm '" + (s / "notes") +
            "': the directory exists and is not a swarm ('readme.txt' is not a model file); remove "
            "it or choose another directory");
  CHECK(s.snapshot() == notes);
}
