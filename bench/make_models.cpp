// Writes TorchScript MLPs for the command-line benchmarks (bench/run_cli_big.sh): N files
// DIR/member-000.pt ... of torch.jit.script(nn.Sequential(Linear, ReLU, ...)) shape, the weights
// drawn from a normal of the given seed. Nothing here is timed.
//
// Usage: nyto_bench_make_models DIR N SEED [WIDTHS...]   (default widths 784 1024 256 10)
#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s DIR N SEED [WIDTHS...]\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const int n = std::atoi(argv[2]);
  at::manual_seed(std::strtoull(argv[3], nullptr, 10));
  std::vector<int64_t> widths;
  for (int i = 4; i < argc; ++i) widths.push_back(std::atoll(argv[i]));
  if (widths.empty()) widths = {784, 1024, 256, 10};
  std::filesystem::create_directories(dir);
  for (int m = 0; m < n; ++m) {
    torch::jit::Module net("Mlp");
    std::string body = "def forward(self, x):\n";
    for (size_t l = 0; l + 1 < widths.size(); ++l) {
      torch::jit::Module fc("Fc");
      fc.register_parameter("weight", at::randn({widths[l + 1], widths[l]}) * 0.05, false);
      fc.register_parameter("bias", at::randn({widths[l + 1]}) * 0.05, false);
      fc.define("def forward(self, x):\n  return torch.matmul(x, self.weight.t()) + self.bias\n");
      const std::string name = "fc" + std::to_string(l + 1);
      net.register_module(name, fc);
      body += "  x = self." + name + ".forward(x)\n";
      if (l + 2 < widths.size()) body += "  x = torch.relu(x)\n";
    }
    net.define(body + "  return x\n");
    char file[32];
    std::snprintf(file, sizeof file, "member-%03d.pt", m);
    net.save((std::filesystem::path(dir) / file).string());
  }
  return 0;
}
