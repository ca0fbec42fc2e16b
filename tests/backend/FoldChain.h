// Member folds between member windows run at once in one process, one thread per window, as
// ProcessGroup::fold passes them between ranks (KernelArgs::fold): tests of the staged and
// parameter-axis drivers on windows.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backend/Kernel.h"
#include "tests/doctest_torch.h"

namespace nyto::test {

// Member folds between windows run at once, one thread per window, passed on in window order as
// ProcessGroup::fold passes them between ranks: Receive from the window before (the windows with
// members come first), Send to the next, Share from the last window with members.
class FoldChain {
 public:
  FoldChain(std::vector<std::pair<int64_t, int64_t>> windows) : windows_(std::move(windows)) {
    for (const auto& [lo, hi] : windows_) with_ += hi > lo;
  }
  size_t messages() const { return messages_; }
  bool step(int w, KernelArgs::FoldStep step, void* acc, int64_t bytes) {
    const bool mine = w < with_;
    switch (step) {
      case KernelArgs::FoldStep::Receive:
        if (!mine || w == 0) return false;
        take(w - 1, w, acc, bytes);
        return true;
      case KernelArgs::FoldStep::Send:
        if (mine && w + 1 < with_) put(w, w + 1, acc, bytes);
        return false;
      case KernelArgs::FoldStep::Share:
        if (w == with_ - 1)
          for (int q = 0; q < int(windows_.size()); ++q) {
            if (q != w) put(w, q, acc, bytes);
          }
        else
          take(with_ - 1, w, acc, bytes);
        return false;
    }
    return false;
  }

 private:
  void put(int from, int to, const void* acc, int64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    box_[{from, to}].emplace_back(static_cast<const char*>(acc), static_cast<const char*>(acc) + bytes);
    ++messages_;
    cv_.notify_all();
  }
  void take(int from, int to, void* acc, int64_t bytes) {
    std::unique_lock<std::mutex> lock(mu_);
    auto& q = box_[{from, to}];
    cv_.wait(lock, [&] { return !q.empty(); });
    REQUIRE(int64_t(q.front().size()) == bytes);
    std::memcpy(acc, q.front().data(), size_t(bytes));
    q.pop_front();
  }
  std::vector<std::pair<int64_t, int64_t>> windows_;
  int with_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::pair<int, int>, std::deque<std::vector<char>>> box_;
  size_t messages_ = 0;
};

// What run_windows gives: per window, its outputs and their row strides; the fold messages and
// the outside rows passed.
template <class T>
struct WindowRuns {
  std::vector<std::vector<std::vector<T>>> out;
  std::vector<std::vector<int64_t>> strides;
  size_t messages = 0, outside = 0;
};

// Runs `k` on every window of `windows` at once (one thread each, as ranks), on `b`'s bindings
// (tests/backend/RandomBindings.h): member folds through a FoldChain in chunks of `chunk`
// elements, and the rows a window's member reads outside it (Kernel::rows_read) from the
// inputs. Fails the test with the message of any window that throws.
template <class T, class Bindings>
WindowRuns<T> run_windows(const Bindings& b, const Kernel& k, const std::vector<std::pair<int64_t, int64_t>>& windows,
                          int64_t chunk) {
  WindowRuns<T> r;
  r.out.resize(windows.size());
  r.strides.resize(windows.size());
  FoldChain chain(windows);
  std::vector<std::string> errors(windows.size());
  std::vector<size_t> outside(windows.size(), 0);
  std::vector<std::thread> ranks;
  for (size_t w = 0; w < windows.size(); ++w)
    ranks.emplace_back([&, w] {
      try {
        b.run(k, r.out[w], [&](KernelArgs& a, const std::vector<std::vector<T>>& in) {
          std::tie(a.member_begin, a.member_end) = windows[w];
          a.fold_chunk = chunk;
          a.fold = [&chain, w](KernelArgs::FoldStep step, void* acc, int64_t n) {
            return chain.step(int(w), step, acc, n * int64_t(sizeof(T)));
          };
          for (int64_t m : k.rows_read(a)) {
            if (m >= a.member_begin && m < a.member_end) continue;
            std::vector<const void*> rows(a.in.size(), nullptr);
            for (size_t i = 0; i < a.in.size(); ++i)
              if (b.spec.kinds[i] == BindKind::Swarm) rows[i] = in[i].data() + m * b.row;
            a.outside_rows.emplace_back(m, rows);
            ++outside[w];
          }
          r.strides[w] = a.out_stride;
        });
      } catch (const std::exception& e) {
        errors[w] = e.what();
      }
    });
  for (auto& t : ranks) t.join();
  for (const std::string& e : errors) REQUIRE_MESSAGE(e.empty(), e);
  r.messages = chain.messages();
  for (size_t n : outside) r.outside += n;
  return r;
}

// The first value where a window's rows, or a value stored once (row stride 0, every window's),
// differ in bits from `want` (a run on every member; NaNs of any payload agree): a description,
// or "" when none does. `compared` counts the values compared.
template <class T>
std::string first_difference(const std::vector<std::vector<T>>& want, const WindowRuns<T>& got,
                             const std::vector<std::pair<int64_t, int64_t>>& windows, int64_t row, size_t& compared) {
  for (size_t w = 0; w < windows.size(); ++w) {
    const auto [lo, hi] = windows[w];
    for (size_t k = 0; k < want.size(); ++k) {
      const bool once = got.strides[w][k] == 0;
      for (int64_t m = once ? 0 : lo; m < (once ? 1 : hi); ++m)
        for (int64_t e = 0; e < row; ++e) {
          const T x = want[k][size_t(m * row + e)], v = got.out[w][k][size_t(m * row + e)];
          ++compared;
          if (std::memcmp(&x, &v, sizeof x) != 0 && !(x != x && v != v))
            return "output " + std::to_string(k) + " member " + std::to_string(m) + " element " + std::to_string(e) +
                   ": whole run " + std::to_string(x) + ", window [" + std::to_string(lo) + ", " + std::to_string(hi) +
                   ") of " + std::to_string(windows.size()) + ": " + std::to_string(v);
        }
    }
  }
  return "";
}

// The population [0, M) cut at `cuts` (sorted, in [0, M]) into windows, those with members first
// (as ProcessGroup's blocks are).
inline std::vector<std::pair<int64_t, int64_t>> windows_of(std::vector<int64_t> cuts, int64_t M) {
  cuts.push_back(0), cuts.push_back(M);
  std::sort(cuts.begin(), cuts.end());
  std::vector<std::pair<int64_t, int64_t>> w;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) w.emplace_back(cuts[i], cuts[i + 1]);
  std::stable_partition(w.begin(), w.end(), [](const auto& x) { return x.second > x.first; });
  return w;
}

}  // namespace nyto::test
