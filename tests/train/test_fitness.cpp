// cli/Fitness.h: FitnessEvaluator's losses against the plain per-member forward
// (at::nll_loss(member.forward(images), labels), what Trainer::fitness computes), for every
// strategy, member count and thread budget; members moved in place after construction; errors.
#include "tests/doctest_torch.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nyto/swarm.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cli/Fitness.h"
#include "cli/Zoo.h"

using nyto::cli::FitnessEvaluator;
using nyto::cli::FitnessStrategy;

namespace {

// The bound on |evaluator - reference|: both forwards run in float32 and differ only in the order
// of their sums (GEMM blocking, chunks of images, the mean taken in double), so they agree to a
// few float32 ulps of the loss: the bound is 4e-6 x max(1, |loss|) (about 32 ulps), where the
// largest difference measured over this file's cases is 2.5e-7 (2 ulps).
constexpr double kRel = 4e-6;

// Under sanitizers (10-20x slower, tests/CMakeLists.txt) the mlp runs on fewer images and widths.
#ifdef NYTO_TEST_SANITIZED
constexpr int64_t kMlpImages = 60;
const std::vector<int64_t> kMlpHidden = {7, 100};
#else
constexpr int64_t kMlpImages = 300;
const std::vector<int64_t> kMlpHidden = {1, 7, 32, 100};
#endif

bool close(double a, double ref) {
  return std::abs(a - ref) <= kRel * std::max(1.0, std::abs(ref));
}

nyto::AnySwarm swarm_of(const std::string& model, int64_t hidden, int64_t members, double noise) {
  nyto::cli::ZooOptions o;
  o.hidden = hidden;
  nyto::AnySwarm s(nyto::cli::make_model(model, o), members);
  at::NoGradGuard ng;
  s.storage()[0].add_(at::randn(s.storage()[0].sizes()) * noise);  // members differ
  return s;
}

std::vector<double> reference(const nyto::AnySwarm& s, const at::Tensor& x, const at::Tensor& y) {
  at::NoGradGuard ng;
  std::vector<double> r;
  for (int64_t m = 0; m < s.size(); ++m)
    r.push_back(at::nll_loss(nyto::cli::classify(s.member(m), x), y).item<double>());
  return r;
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

const char* name(FitnessStrategy k) {
  switch (k) {
    case FitnessStrategy::Auto:
      return "auto";
    case FitnessStrategy::Loop:
      return "loop";
    case FitnessStrategy::MemberThreads:
      return "member-threads";
    case FitnessStrategy::Batched:
      return "batched";
  }
  return "?";
}

// Every strategy at 1 and 2 threads against the reference, each twice (same bits).
void check_all(const nyto::AnySwarm& s, const std::string& model, const at::Tensor& x,
               const at::Tensor& y, const std::vector<FitnessStrategy>& kinds) {
  const std::vector<double> ref = reference(s, x, y);
  for (FitnessStrategy k : kinds) {
    for (int threads : {1, 2}) {
      CAPTURE(name(k));
      CAPTURE(threads);
      FitnessEvaluator fe(s, model, threads, k);
      CHECK(fe.members() == s.size());
      std::vector<double> out, again;
      fe.evaluate(x, y, out);
      REQUIRE(out.size() == ref.size());
      for (size_t m = 0; m < ref.size(); ++m) {
        CAPTURE(m);
        CAPTURE(out[m]);
        CAPTURE(ref[m]);
        CHECK(std::isfinite(out[m]));
        CHECK(close(out[m], ref[m]));
      }
      CHECK(at::get_num_threads() == threads);
      // Loop runs on the caller's thread; the others put one member range on each thread.
      const bool split = k != FitnessStrategy::Loop && s.size() >= threads;
      CHECK(fe.threads_used() == (split ? threads : 1));
      fe.evaluate(x, y, again);
      CHECK(same_bits(out, again));
    }
  }
}

}  // namespace

TEST_CASE("fitness: mlp, every strategy agrees with the per-member forward") {
  at::manual_seed(11);
  const std::vector<FitnessStrategy> kinds = {FitnessStrategy::Auto, FitnessStrategy::Batched,
                                              FitnessStrategy::MemberThreads,
                                              FitnessStrategy::Loop};
  const at::Tensor x = at::rand({kMlpImages, 1, 28, 28});
  const at::Tensor y = at::randint(10, {kMlpImages}, at::kLong);
  // Groups of 512 / hidden members: hidden 32, 16 members a GEMM; 100, 5 (a part of 32 members
  // ends in a group of 2); 1 and 7, tiny layers, a part in one GEMM; 1500 (below), groups of one
  // member, its weights used in place.
  for (int64_t hidden : kMlpHidden) {
    for (int64_t members : {1, 3, 64}) {
      CAPTURE(hidden);
      CAPTURE(members);
      check_all(swarm_of("mlp", hidden, members, 0.05), "mlp", x, y, kinds);
    }
  }
  for (int64_t members : {1, 3})
    check_all(swarm_of("mlp", 1500, members, 0.05), "mlp", x, y, kinds);
  // Images as [B, 784], large weights (losses in the tens), a batch of one.
  check_all(swarm_of("mlp", 32, 5, 1.0), "mlp", x.reshape({kMlpImages, 784}), y, kinds);
  check_all(swarm_of("mlp", 32, 5, 0.05), "mlp", x.narrow(0, 0, 1), y.narrow(0, 0, 1), kinds);
}

TEST_CASE("fitness: cnn, every strategy agrees with the per-member forward") {
  at::manual_seed(12);
  const std::vector<FitnessStrategy> kinds = {FitnessStrategy::Auto, FitnessStrategy::MemberThreads,
                                              FitnessStrategy::Loop};
  // 130 images: two chunks of 50 and one of 30; 7: less than a chunk.
  for (int64_t batch : {130, 7}) {
    const at::Tensor x = at::rand({batch, 1, 28, 28});
    const at::Tensor y = at::randint(10, {batch}, at::kLong);
    for (int64_t members : {1, 4}) {
      CAPTURE(batch);
      CAPTURE(members);
      check_all(swarm_of("cnn", 0, members, 0.05), "cnn", x, y, kinds);
    }
  }
  const at::Tensor x = at::rand({60, 1, 28, 28});
  const at::Tensor y = at::randint(10, {60}, at::kLong);
  check_all(swarm_of("cnn", 0, 3, 0.5), "cnn", x, y, kinds);  // large weights: losses in the tens
}

TEST_CASE("fitness: Auto picks the batched GEMM for the mlp and members over threads for the cnn") {
  at::manual_seed(13);
  FitnessEvaluator mlp(swarm_of("mlp", 32, 64, 0.05), "mlp", 2);
  CHECK(mlp.strategy_kind() == FitnessStrategy::Batched);
  CHECK(mlp.strategy() ==
        "mlp: members batched, first layers of up to 16 members in one GEMM, over 2 threads");
  FitnessEvaluator cnn(swarm_of("cnn", 0, 16, 0.05), "cnn", 2);
  CHECK(cnn.strategy_kind() == FitnessStrategy::MemberThreads);
  CHECK(cnn.strategy() ==
        "cnn: members over 2 threads, each forward single-threaded on 50 images at a time");
  // Fewer members than threads: one part per member.
  FitnessEvaluator one(swarm_of("cnn", 0, 1, 0.05), "cnn", 2);
  CHECK(one.strategy() ==
        "cnn: members over 1 thread, each forward single-threaded on 50 images at a time");
}

TEST_CASE("fitness: members moved in place in the storage after construction are seen") {
  at::manual_seed(14);
  for (const std::string model : {"mlp", "cnn"}) {
    const int64_t members = model == "mlp" ? 64 : 4;
    const int64_t batch = model == "mlp" ? 200 : 70;
    const at::Tensor x = at::rand({batch, 1, 28, 28});
    const at::Tensor y = at::randint(10, {batch}, at::kLong);
    for (int threads : {1, 2}) {
      CAPTURE(model);
      CAPTURE(threads);
      nyto::AnySwarm s = swarm_of(model, 32, members, 0.05);
      FitnessEvaluator fe(s, model, threads);
      std::vector<double> before, after;
      fe.evaluate(x, y, before);
      at::Tensor st = s.storage()[0];
      {
        at::NoGradGuard ng;
        st[2].add_(at::randn({st.size(1)}) * 0.3);  // member 2 moves
        st[1].copy_(st[0]);                         // member 1 becomes member 0
      }
      fe.evaluate(x, y, after);
      const std::vector<double> ref = reference(s, x, y);
      for (size_t m = 0; m < ref.size(); ++m) {
        CAPTURE(m);
        CHECK(close(after[m], ref[m]));
        if (m != 1 && m != 2) CHECK(close(after[m], before[m]));
      }
      CHECK(std::abs(after[2] - before[2]) > 1e-3);
      CHECK(std::abs(after[1] - before[1]) > 1e-4);
      CHECK(close(after[1], after[0]));
      // A rule's in-place update of the whole storage (x = 0.5 x): every loss follows.
      {
        at::NoGradGuard ng;
        st.mul_(0.5);
      }
      fe.evaluate(x, y, after);
      const std::vector<double> ref2 = reference(s, x, y);
      for (size_t m = 0; m < ref2.size(); ++m) CHECK(close(after[m], ref2[m]));
    }
  }
}

TEST_CASE("fitness: bad models, swarms and inputs are refused with a reason") {
  at::manual_seed(15);
  nyto::AnySwarm mlp = swarm_of("mlp", 8, 3, 0.05);
  nyto::AnySwarm cnn = swarm_of("cnn", 0, 2, 0.05);
  CHECK_THROWS_WITH_AS(FitnessEvaluator(mlp, "resnet", 1),
                       doctest::Contains("unknown model 'resnet'"), nyto::Error);
  CHECK_THROWS_WITH_AS(FitnessEvaluator(mlp, "cnn", 1), doctest::Contains("not a zoo cnn"),
                       nyto::Error);
  CHECK_THROWS_WITH_AS(FitnessEvaluator(cnn, "mlp", 1), doctest::Contains("not a zoo mlp"),
                       nyto::Error);
  CHECK_THROWS_WITH_AS(FitnessEvaluator(mlp, "mlp", 0), doctest::Contains("threads"), nyto::Error);
  CHECK_THROWS_WITH_AS(FitnessEvaluator(cnn, "cnn", 1, FitnessStrategy::Batched),
                       doctest::Contains("mlp only"), nyto::Error);

  FitnessEvaluator fe(mlp, "mlp", 1);
  const at::Tensor x = at::rand({4, 1, 28, 28});
  const at::Tensor y = at::tensor({1, 2, 3, 4}, at::kLong);
  std::vector<double> out = {42.0};
  CHECK_THROWS_WITH_AS(fe.evaluate(at::rand({4, 3, 28, 28}), y, out),
                       doctest::Contains("[B, 1, 28, 28]"), nyto::Error);
  CHECK_THROWS_WITH_AS(fe.evaluate(x.to(at::kDouble), y, out), doctest::Contains("float32"),
                       nyto::Error);
  CHECK_THROWS_WITH_AS(fe.evaluate(x, y.to(at::kInt), out), doctest::Contains("int64"),
                       nyto::Error);
  CHECK_THROWS_WITH_AS(fe.evaluate(x, y.narrow(0, 0, 3), out),
                       doctest::Contains("labels must be [4]"), nyto::Error);
  CHECK_THROWS_WITH_AS(fe.evaluate(x, at::tensor({1, 2, 10, 4}, at::kLong), out),
                       doctest::Contains("0..9"), nyto::Error);
  CHECK_THROWS_WITH_AS(fe.evaluate(x, at::tensor({1, -1, 3, 4}, at::kLong), out),
                       doctest::Contains("0..9"), nyto::Error);
  CHECK(out == std::vector<double>{42.0});  // unchanged by a refused call
  fe.evaluate(x, y, out);
  CHECK(out.size() == 3);
}

// A rank of a distributed run evaluates its block of members only (cli/Dist.h): each member's
// loss is the one the whole swarm's evaluation gives it, bit for bit, for the strategies that
// compute each member alone, whatever the block and the thread budget.
TEST_CASE("fitness: a member range gives each member the bits of the whole evaluation") {
  at::manual_seed(12);
  const at::Tensor x = at::rand({kMlpImages, 1, 28, 28});
  const at::Tensor y = at::randint(10, {kMlpImages}, at::kLong);
  for (const char* model : {"mlp", "cnn"}) {
    nyto::AnySwarm s = swarm_of(model, 32, 7, 0.05);
    for (FitnessStrategy k : {FitnessStrategy::MemberThreads, FitnessStrategy::Loop}) {
      CAPTURE(model);
      CAPTURE(name(k));
      std::vector<double> whole;
      FitnessEvaluator(s, model, 1, k).evaluate(x, y, whole);
      REQUIRE(whole.size() == 7);
      for (auto [b, e] : std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 5}, {5, 7}, {2, 3}, {4, 4}}) {
        for (int threads : {1, 2}) {
          std::vector<double> part;
          FitnessEvaluator(s, model, threads, k, b, e).evaluate(x, y, part);
          CHECK(same_bits(part, std::vector<double>(whole.begin() + b, whole.begin() + e)));
        }
      }
    }
  }
  nyto::AnySwarm s = swarm_of("mlp", 32, 4, 0.05);
  CHECK_THROWS_WITH_AS(FitnessEvaluator(s, "mlp", 1, FitnessStrategy::Auto, 3, 5),
                       doctest::Contains("member range [3, 5) is not within the swarm's 4 members"), nyto::Error);
  CHECK_THROWS_WITH_AS(FitnessEvaluator(s, "mlp", 1, FitnessStrategy::Auto, 2, 1),
                       doctest::Contains("member range [2, 1)"), nyto::Error);
}
