// The API behind `nyto run`'s files (include/nyto/any_module.h), without Python: TorchScript
// modules are built and saved from C++ here.
#include "tests/doctest_torch.h"  // first: LibTorch's glog CHECK would replace doctest's

#include <ATen/ATen.h>
#include <nyto/any_module.h>
#include <nyto/checked_load.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "tests/archive_patch.h"
#include "tests/runtime/models.h"

namespace fs = std::filesystem;

namespace {

struct Scratch {
  fs::path dir;
  Scratch() {
    char tmpl[] = "/tmp/nyto-any-module-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~Scratch() { fs::remove_all(dir); }
  std::string operator/(const std::string& name) const { return (dir / name).string(); }
};

// A TorchScript model: y = fc(x) * scale + offset, with fc a submodule (weight [2, 3], bias [2]),
// scale a float64 parameter [2] (the only one that requires grad) and offset a buffer [2].
torch::jit::Module script_net(double fill) {
  torch::jit::Module fc("Fc");
  fc.register_parameter("weight", at::full({2, 3}, fill), false);
  fc.register_parameter("bias", at::arange(2, at::kFloat) + fill, false);
  fc.define("def forward(self, x):\n  return torch.matmul(x, self.weight.t()) + self.bias\n");
  torch::jit::Module net("Net");
  net.register_module("fc", fc);
  net.register_parameter("scale", at::full({2}, 2.0, at::kDouble).requires_grad_(), false);
  net.register_buffer("offset", at::full({2}, 0.5));
  net.define("def forward(self, x):\n  return self.fc.forward(x) * self.scale + self.offset\n");
  return net;
}

// A [1, n] float64 tensor.
at::Tensor expected(std::vector<double> v) {
  int64_t n = int64_t(v.size());
  return at::tensor(v, at::kDouble).view({1, n});
}

at::Tensor param(const torch::jit::Module& m, const std::string& path) {
  for (const auto& p : m.named_parameters(true))
    if (p.name == path) return p.value;
  FAIL("no parameter " << path);
  return {};
}

}  // namespace

TEST_CASE("a TorchScript model is a particle; its results save back as TorchScript") {
  Scratch s;
  script_net(1.0).save(s / "net.pt");
  CHECK(nyto::inspect_file(s / "net.pt").format == nyto::Format::TorchScript);
  CHECK_FALSE(nyto::inspect_file(s / "net.pt").swarm);

  nyto::AnyParticle p = nyto::load_particle(s / "net.pt");
  CHECK(nyto::format_of(p) == nyto::Format::TorchScript);
  CHECK(p.species()->name().find("Net#") == 0);
  REQUIRE(p.params().size() == 3);
  CHECK(p.params()[0].path == "scale");
  CHECK(p.params()[1].path == "fc.weight");
  CHECK(p.params()[2].path == "fc.bias");
  CHECK(p.species()->groups().size() == 2);  // float64 and float32

  at::Tensor x = at::ones({1, 3});
  auto forward = [&](torch::jit::Module m) { return m.forward({x}).toTensor(); };
  at::Tensor y = forward(nyto::script_module(p));
  CHECK(at::allclose(y.to(at::kDouble), expected({(3.0 + 1.0) * 2 + 0.5, (3.0 + 2.0) * 2 + 0.5})));

  // A new particle keeps the TorchScript template; saved, it is a TorchScript archive with its values.
  nyto::AnyParticle q = 0.5 * p + 1.0;
  CHECK(q.same_species(p));
  CHECK(nyto::format_of(q) == nyto::Format::TorchScript);
  nyto::save_particle(q, s / "q.pt");
  torch::jit::Module back = torch::jit::load(s / "q.pt");
  CHECK(at::allclose(param(back, "fc.weight"), at::full({2, 3}, 1.5)));
  CHECK(at::allclose(param(back, "fc.bias"), at::tensor({1.5f, 2.0f})));
  CHECK((param(back, "scale").scalar_type() == at::kDouble));
  CHECK(at::allclose(param(back, "scale"), at::full({2}, 2.0, at::kDouble)));
  CHECK(param(back, "scale").requires_grad());  // as in the file
  CHECK_FALSE(param(back, "fc.weight").requires_grad());
  CHECK(at::allclose(forward(back).to(at::kDouble), expected({(4.5 + 1.5) * 2 + 0.5, (4.5 + 2.0) * 2 + 0.5})));
  // p itself is unchanged, and so is the file it came from.
  CHECK(at::allclose(param(torch::jit::load(s / "net.pt"), "fc.weight"), at::ones({2, 3})));
  CHECK(at::allclose(p.param_tensors()[1], at::ones({2, 3})));

  // Loaded back, the saved file is a particle again; no temporary file is left behind.
  nyto::AnyParticle r = nyto::load_particle(s / "q.pt");
  CHECK(at::allclose(r.param_tensors()[1], at::full({2, 3}, 1.5)));
  CHECK(std::distance(fs::directory_iterator(s.dir), fs::directory_iterator()) == 2);
}

TEST_CASE("nyto checkpoints load without the module's C++ class") {
  Scratch s;
  torch::manual_seed(3);
  auto net = nyto::make_particle<NetImpl>();
  net.save(s / "net.ckpt");
  CHECK(nyto::inspect_file(s / "net.ckpt").format == nyto::Format::Nyto);

  nyto::AnyParticle p = nyto::load_particle(s / "net.ckpt");
  CHECK(nyto::format_of(p) == nyto::Format::Nyto);
  REQUIRE(p.params().size() == net.params().size());
  for (size_t i = 0; i < p.params().size(); ++i) {
    CHECK(p.params()[i].path == net.params()[i].path);
    CHECK(at::equal(p.param_tensors()[i], net.param_tensors()[i]));
  }
  // The file is also readable into the original class: the same paths in the same order.
  nyto::save_particle(p * 2.0, s / "twice.ckpt");
  auto twice = net.clone();
  twice.load(s / "twice.ckpt");
  for (size_t i = 0; i < p.params().size(); ++i)
    CHECK(at::allclose(twice.param_tensors()[i], 2 * net.param_tensors()[i]));

  CHECK_THROWS_AS(nyto::save_particle(p, s / "x.pt", nyto::Format::TorchScript), nyto::IOError);
  CHECK_THROWS_AS(nyto::script_module(p), nyto::Error);
  CHECK_FALSE(fs::exists(s / "x.pt"));
}

TEST_CASE("species: files of one structure join one species; other structures are refused") {
  Scratch s;
  script_net(1.0).save(s / "a.pt");
  script_net(2.0).save(s / "b.pt");
  nyto::make_particle<NetImpl>().save(s / "other.ckpt");
  auto a = nyto::load_particle(s / "a.pt");
  auto b = nyto::load_particle(s / "b.pt");
  CHECK_FALSE(a.same_species(b));
  CHECK(nyto::same_structure(a, b));
  auto b2 = nyto::to_species(a, b);
  CHECK(b2.same_species(a));
  CHECK(at::equal(b2.param_tensors()[1], at::full({2, 3}, 2.0)));
  // b2 keeps b's template: its buffers and its own TorchScript module.
  nyto::save_particle(b2 + a, s / "sum.pt");
  CHECK(at::allclose(param(torch::jit::load(s / "sum.pt"), "fc.weight"), at::full({2, 3}, 3.0)));

  auto other = nyto::load_particle(s / "other.ckpt");
  CHECK_FALSE(nyto::same_structure(a, other));
  CHECK_THROWS_AS(nyto::to_species(a, other), nyto::ShapeError);
}

TEST_CASE("swarms: a directory of model files, or a nyto swarm checkpoint") {
  Scratch s;
  fs::create_directory(s / "dir");
  for (int i = 0; i < 3; ++i) script_net(double(i)).save(s / ("dir/m" + std::to_string(i) + ".pt"));
  std::ofstream(s / "dir/.hidden") << "ignored";
  std::vector<std::string> names;
  nyto::AnySwarm sw = nyto::load_swarm(s / "dir", &names);
  CHECK(sw.size() == 3);
  CHECK(names == std::vector<std::string>{"m0.pt", "m1.pt", "m2.pt"});
  for (int i = 0; i < 3; ++i) CHECK(at::equal(sw.member(i).param_tensors()[1], at::full({2, 3}, double(i))));

  nyto::save_swarm_dir(sw, s / "out", names, nyto::Format::TorchScript);
  nyto::save_swarm_dir(sw, s / "default", {}, nyto::Format::TorchScript);
  CHECK(fs::exists(s / "default/member-002.pt"));
  CHECK(at::allclose(param(torch::jit::load(s / "out/m2.pt"), "fc.weight"), at::full({2, 3}, 2.0)));
  CHECK_THROWS_AS(nyto::save_swarm_dir(sw, s / "bad", {"a.pt"}, nyto::Format::TorchScript), nyto::ShapeError);

  // A nyto swarm checkpoint.
  nyto::AnySwarm ck(nyto::load_particle(s / "dir/m1.pt"), 2, nyto::SwarmInit::Randn);
  ck.save(s / "swarm.ckpt");
  CHECK(nyto::inspect_file(s / "swarm.ckpt").swarm);
  auto ck2 = nyto::load_swarm(s / "swarm.ckpt");
  CHECK(ck2.size() == 2);
  for (size_t g = 0; g < ck.storage().size(); ++g) CHECK(at::equal(ck.storage()[g], ck2.storage()[g]));
  CHECK_THROWS_AS(nyto::load_particle(s / "swarm.ckpt"), nyto::IOError);

  // load_models: whatever the path holds.
  auto from_dir = nyto::load_models(s / "dir");
  CHECK(from_dir.is_swarm());
  CHECK_FALSE(from_dir.swarm_file);
  CHECK(from_dir.members == names);
  auto from_ckpt = nyto::load_models(s / "swarm.ckpt");
  CHECK(from_ckpt.swarm_file);
  CHECK(from_ckpt.swarm.size() == 2);
  auto one = nyto::load_models(s / "dir/m1.pt");
  CHECK_FALSE(one.is_swarm());
  CHECK(one.particle.defined());
  CHECK_THROWS_AS(nyto::load_swarm(s / "dir/m0.pt"), nyto::IOError);

  // Into the species of a particle already loaded (`like`): no conversion afterwards; a member
  // saves as TorchScript with the swarm's values of the moment.
  nyto::AnyParticle rep = nyto::load_particle(s / "dir/m1.pt");
  nyto::AnySwarm joined = nyto::load_swarm(s / "dir", nullptr, {rep});
  CHECK(joined.species() == rep.species());
  for (int i = 0; i < 3; ++i) CHECK(at::equal(joined.member(i).param_tensors()[1], at::full({2, 3}, double(i))));
  {
    at::NoGradGuard g;
    joined.storage()[1].fill_(0);  // float32 group: fc.weight, fc.bias of every member
  }
  CHECK(at::allclose(param(nyto::script_module(joined.member(2)), "fc.weight"), at::zeros({2, 3})));
  CHECK(nyto::load_swarm(s / "dir", nullptr, {nyto::make_particle<NetImpl>()}).species() != rep.species());

  // Another structure in the directory.
  nyto::make_particle<NetImpl>().save(s / "dir/m3.pt");
  CHECK_THROWS_AS(nyto::load_swarm(s / "dir"), nyto::ShapeError);
  fs::create_directory(s / "empty");
  CHECK_THROWS_AS(nyto::load_swarm(s / "empty"), nyto::IOError);
}

TEST_CASE("bad files: IOError with a clear message") {
  Scratch s;
  CHECK_THROWS_WITH_AS(nyto::load_particle(s / "missing.pt"), doctest::Contains("cannot open"), nyto::IOError);
  std::ofstream(s / "text.pt") << "not a model";
  CHECK_THROWS_WITH_AS(nyto::load_particle(s / "text.pt"),
                       doctest::Contains("neither a nyto checkpoint nor a TorchScript archive"), nyto::IOError);
  CHECK_THROWS_AS(nyto::load_particle(s.dir.string()), nyto::IOError);
  torch::jit::Module empty("Empty");
  empty.define("def forward(self, x):\n  return x\n");
  empty.save(s / "empty.pt");
  CHECK_THROWS_WITH_AS(nyto::load_particle(s / "empty.pt"), doctest::Contains("without parameters"),
                       nyto::IOError);
  auto p = nyto::make_particle<NetImpl>();
  CHECK_THROWS_AS(nyto::save_particle(p, s / "no/such/dir/p.pt", nyto::Format::Nyto), nyto::IOError);
}

// The message of the IOError `f` throws (else a description of what happened instead).
template <class F>
std::string io_error(F f) {
  try {
    f();
  } catch (const nyto::IOError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not an IOError: ") + e.what();
  }
  return "no exception";
}

TEST_CASE("a tensor reaching beyond its data: IOError naming the file and the tensor") {
  using namespace std::string_literals;
  Scratch s;
  // In the pickle, a [8, 4] float tensor is "(K\x08K\x04t" (sizes), "K tQ" its storage of 32
  // elements, "K\x00(" its storage offset.
  torch::jit::Module m("M");
  m.register_parameter("w", at::ones({8, 4}), false);
  m.define("def forward(self, x):\n  return x + self.w\n");
  struct Case {
    std::string from, to, message;
  };
  const Case cases[] = {
      {"(K\x08K\x04t"s, "(K\x08J\x00\x00\x00\x10t"s, "tensor 'w' of shape [8, 268435456]"},
      {"(K\x08K\x04t"s, "(K\x08K\x05t"s, "'w' of shape [8, 5] (Float, strides [4, 1], storage offset 0) "
                                         "needs 132 bytes of its storage, which holds 128"},
      {"K\x00("s, "K\x01("s, "storage offset 1) needs 132 bytes"},
      {"K tQ"s, "J\x00\x00\x00\x10tQ"s, "tensor 'w' claims a storage of 1073741824 bytes but the file holds 128"},
      {"(K\x04K\x01t"s, "(K\x04J\x00\x00\x00\x10t"s, "'w' of shape [8, 4] (Float, strides [4, 268435456]"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.message);
    std::string ts = s / "m.pt";
    m.save(ts);
    nyto::test::patch_archive(ts, "data.pkl", c.from, c.to);
    std::string msg = io_error([&] { nyto::load_particle(ts); });
    CHECK(msg.find("'" + ts + "' is corrupt: tensor") != std::string::npos);
    CHECK(msg.find(c.message) != std::string::npos);
    CHECK_THROWS_AS(nyto::load_models(ts), nyto::IOError);
  }
  // nyto particle and swarm checkpoints (param_0 is w; a swarm's is [2, 8, 4]).
  m.save(s / "m.pt");
  auto p = nyto::load_particle(s / "m.pt");
  nyto::save_particle(p, s / "p.ckpt", nyto::Format::Nyto);
  nyto::test::patch_archive(s / "p.ckpt", "data.pkl", "(K\x08K\x04t"s, "(K\x08K\x05t"s);
  CHECK_THROWS_WITH_AS(nyto::load_particle(s / "p.ckpt"), doctest::Contains("tensor 'param_0' of shape [8, 5]"),
                       nyto::IOError);
  nyto::AnySwarm(p, 2).save(s / "s.ckpt");
  nyto::test::patch_archive(s / "s.ckpt", "data.pkl", "(K\x02K\x08K\x04t"s, "(K\x02K\x08K\x05t"s);
  CHECK_THROWS_WITH_AS(nyto::load_swarm(s / "s.ckpt"), doctest::Contains("tensor 'param_0' of shape [2, 8, 5]"),
                       nyto::IOError);
  CHECK_THROWS_AS(nyto::load_models(s / "s.ckpt"), nyto::IOError);
}

TEST_CASE("damaged code or debug records: IOError, never an internal error or a crash") {
  Scratch s;
  torch::jit::Module m = script_net(1.0);
  std::string ts = s / "net.pt";
  // The code declares another attribute than the pickle holds (LibTorch threw std::out_of_range
  // "Argument passed to at() was not in the map", an internal error).
  m.save(ts);
  nyto::test::patch_archive(ts, "code/__torch__.py", "fc : __torch__.Fc", "fq : __torch__.Fc");
  std::string msg = io_error([&] { nyto::load_particle(ts); });
  CHECK(msg.find("'" + ts + "' is neither a nyto checkpoint nor a TorchScript archive") != std::string::npos);
  // Debug records are not read: a damaged one does not matter.
  m.save(ts);
  caffe2::serialize::PyTorchStreamReader reader(ts);
  std::string debug;
  for (const auto& r : reader.getAllRecords())
    if (r.size() > 10 && r.substr(r.size() - 10) == ".debug_pkl") debug = r;
  REQUIRE(!debug.empty());
  auto [data, size] = reader.getRecord(debug);
  std::string bytes(static_cast<const char*>(data.get()), size);
  nyto::test::patch_archive(ts, debug, bytes.substr(2, 8), std::string(8, '\xff'));
  auto p = nyto::load_particle(ts);
  nyto::save_particle(p, s / "out.pt");
  CHECK(nyto::load_particle(s / "out.pt").params().size() == 3);
}

TEST_CASE("a class body the importer would read past (no type, no value): IOError, never a crash") {
  Scratch s;
  std::string ts = s / "net.pt";
  // LibTorch 1.13's importer read the absent type or value of such a statement through a null
  // pointer (a segmentation fault, found by fuzz/fuzz_models).
  struct Case {
    std::string from, to, message;
  };
  for (const Case& c : std::vector<Case>{
           {"fc : __torch__.Fc", "fc = __torch__.Fc", "in class 'Net': the attribute 'fc' has no type"},
           {"offset : Tensor", "offset = 1", "in class 'Net': the attribute 'offset' has no type"},
           {"class Fc(Module):", "class Fc(NamedTuple):\n  q = 1", "in class 'Fc': the field 'q' has no type"},
           {"__buffers__ = [\"offset\", ]", "__buffers__ : List[str]", "in class 'Net': an assignment without its value"},
       }) {
    CAPTURE(c.to);
    script_net(1.0).save(ts);
    nyto::test::patch_archive(ts, "code/__torch__.py", c.from, c.to);
    std::string msg = io_error([&] { nyto::load_particle(ts); });
    CHECK(msg.find("'" + ts + "' is neither a nyto checkpoint nor a TorchScript archive") != std::string::npos);
    CHECK(msg.find("code record 'code/__torch__.py' is damaged: line ") != std::string::npos);
    CHECK(msg.find(c.message) != std::string::npos);
    CHECK_THROWS_AS(nyto::load_models(ts), nyto::IOError);
  }
  // The same statements where they are valid load as before: a typed attribute and a constant.
  script_net(1.0).save(ts);
  nyto::test::patch_archive(ts, "code/__torch__.py", "offset : Tensor", "offset : Tensor\n  k : Final[int] = 3");
  CHECK(nyto::load_particle(ts).params().size() == 3);
}

TEST_CASE("a damaged pickle (stack underflow, a length past the end): IOError, never a crash") {
  Scratch s;
  torch::jit::Module m = script_net(1.0);
  std::string ts = s / "net.pt";
  // Byte 2 of constants.pkl ("\x80\x02" then ")" EMPTY_TUPLE): BINPERSID, REDUCE or BUILD on an
  // empty stack crashed LibTorch 1.13's unpickler (a segmentation fault).
  for (char op : {'Q', 'R', 'b'}) {
    INFO("opcode " << op);
    m.save(ts);
    nyto::test::patch_archive(ts, "constants.pkl", std::string("\x80\x02)", 3), std::string("\x80\x02", 2) + op);
    std::string msg = io_error([&] { nyto::load_particle(ts); });
    CHECK(msg.find("record 'constants.pkl' is not a valid pickle: an operation needs") != std::string::npos);
    CHECK(msg.find("(byte 2)") != std::string::npos);
  }
  // A string whose declared length (BINUNICODE, 4 bytes) is 2 GB in a small file: LibTorch
  // allocated the 2 GB before reading.
  m.save(ts);
  caffe2::serialize::PyTorchStreamReader reader(ts);
  auto [data, size] = reader.getRecord("data.pkl");
  std::string pkl(static_cast<const char*>(data.get()), size);
  auto x = pkl.find('X');
  REQUIRE(x != std::string::npos);
  nyto::test::patch_archive(ts, "data.pkl", pkl.substr(x, 5), std::string("X\xff\xff\xff\x7f", 5));
  std::string msg = io_error([&] { nyto::load_particle(ts); });
  CHECK(msg.find("is not a valid pickle: a length of 2147483647 bytes runs past the end") != std::string::npos);
  // A memo key of 2^31 (LONG_BINPUT): LibTorch sized its memo vector by the key (32 GB; found by
  // fuzz/fuzz_models). A valid pickler numbers memo entries in order.
  m.save(ts);
  {
    caffe2::serialize::PyTorchStreamReader r2(ts);
    auto [d2, n2] = r2.getRecord("data.pkl");
    std::string p2(static_cast<const char*>(d2.get()), n2);
    auto q = p2.find(std::string("q\x00", 2));
    REQUIRE(q != std::string::npos);
    nyto::test::patch_archive(ts, "data.pkl", p2.substr(q, 2), std::string("r\x00\x00\x00\x80", 5));
  }
  CHECK(io_error([&] { nyto::load_particle(ts); }).find("is not a valid pickle: a memo key out of order (2147483648)") !=
        std::string::npos);
  // The particle and swarm checkpoints of nyto go through the same check.
  m.save(ts);
  auto p = nyto::load_particle(ts);
  std::string ck = s / "ck.pt";
  nyto::save_particle(p, ck);
  nyto::test::patch_archive(ck, "data.pkl", std::string("\x80\x02", 2), std::string("\x80\x02Q", 3));
  CHECK(io_error([&] { nyto::load_particle(ck); }).find("is not a valid pickle") != std::string::npos);
}

TEST_CASE("values saved by torch.save: told apart from models, loaded with every tensor checked") {
  using namespace std::string_literals;
  Scratch s;
  auto save = [](const c10::IValue& v, const std::string& path) {  // as Python's torch.save
    std::vector<char> bytes = torch::jit::pickle_save(v);
    std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  };
  save(at::tensor({1.0f, 2.0f, 3.0f}), s / "t.pt");
  script_net(1.0).save(s / "net.pt");
  nyto::save_particle(nyto::load_particle(s / "net.pt"), s / "net.ckpt", nyto::Format::Nyto);
  std::ofstream(s / "text.pt") << "not an archive";
  CHECK(nyto::is_pickle_archive(s / "t.pt"));
  for (const std::string& other : {s / "net.pt", s / "net.ckpt", s / "text.pt", s / "missing.pt", s.dir.string()}) {
    CAPTURE(other);
    CHECK(!nyto::is_pickle_archive(other));
  }
  c10::IValue v = nyto::load_pickle_checked(s / "t.pt", "not a value");
  REQUIRE(v.isTensor());
  CHECK(at::equal(v.toTensor(), at::tensor({1.0f, 2.0f, 3.0f})));
  // A tensor in a container is checked too: its data record cut to 4 of its 12 bytes.
  c10::impl::GenericList list(c10::AnyType::get());
  list.push_back(at::tensor({1.0f, 2.0f, 3.0f}));
  save(list, s / "list.pt");
  const float three[] = {1.0f, 2.0f, 3.0f};
  nyto::test::patch_archive(s / "list.pt", "data/0", std::string(reinterpret_cast<const char*>(three), 12),
                            std::string(reinterpret_cast<const char*>(three), 4));
  CHECK_THROWS_WITH_AS(nyto::load_pickle_checked(s / "list.pt", "not a value"),
                       doctest::Contains("is corrupt: tensor 'data[0]' claims a storage of 12 bytes but the file holds 4"),
                       nyto::IOError);
  // A damaged pickle: BINPERSID on an empty stack (LibTorch's unpickler would crash).
  save(at::tensor({1.0f}), s / "bad.pt");
  nyto::test::patch_archive(s / "bad.pt", "data.pkl", "\x80\x02"s, "\x80\x02Q"s);
  const std::string bad_message = "'" + (s / "bad.pt") + "' is not a value (corrupt, truncated or another "
                                  "format): record 'data.pkl' is not a valid pickle";
  CHECK_THROWS_WITH_AS(nyto::load_pickle_checked(s / "bad.pt", "not a value"),
                       doctest::Contains(bad_message.c_str()), nyto::IOError);
  CHECK_THROWS_WITH_AS(nyto::load_pickle_checked(s / "missing.pt", "not a value"), doctest::Contains("cannot open"),
                       nyto::IOError);
}
