// PSO the way a careful LibTorch user writes it: per parameter tensor of every member, in-place
// ops on preallocated buffers, random tensors refilled with uniform_ each step.
#include <ATen/ATen.h>

#include <vector>

namespace nyto::bench {

struct EagerPso {
  std::vector<at::Tensor> x, v, pbest, gbest, r1, r2, tmp;
  double w = 0.729, c1 = 1.49445, c2 = 1.49445;

  EagerPso(int64_t members, const std::vector<std::vector<int64_t>>& shapes) {
    at::manual_seed(1);
    for (int64_t m = 0; m < members; ++m)
      for (auto& s : shapes) {
        x.push_back(at::randn(s));
        v.push_back(at::randn(s));
        pbest.push_back(at::randn(s));
        r1.push_back(at::empty(s));
        r2.push_back(at::empty(s));
        tmp.push_back(at::empty(s));
      }
    for (auto& s : shapes) gbest.push_back(at::randn(s));
  }

  void step() {
    const size_t per = gbest.size();
    for (size_t i = 0; i < x.size(); ++i) {
      const at::Tensor& gb = gbest[i % per];
      r1[i].uniform_();
      r2[i].uniform_();
      v[i].mul_(w);
      at::sub_out(tmp[i], pbest[i], x[i]);
      v[i].addcmul_(r1[i], tmp[i], c1);
      at::sub_out(tmp[i], gb, x[i]);
      v[i].addcmul_(r2[i], tmp[i], c2);
      x[i].add_(v[i]);
    }
  }
};

void* eager_create(int64_t members, const std::vector<std::vector<int64_t>>& shapes) {
  return new EagerPso(members, shapes);
}
void eager_step(void* p) { static_cast<EagerPso*>(p)->step(); }
void eager_destroy(void* p) { delete static_cast<EagerPso*>(p); }

}  // namespace nyto::bench
