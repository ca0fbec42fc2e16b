// Uses the installed nyto: builds a particle and checks the seeds' first example.
#include <nyto/nyto.h>
#include <torch/nn/modules/linear.h>

#include <cstdio>

int main() {
  auto net = nyto::make_particle<torch::nn::Linear>(1, 1);
  {
    torch::NoGradGuard g;
    net->weight.fill_(2);
    net->bias.fill_(1);
  }
  auto net2 = net + 10;
  bool ok = net2->weight.item<double>() == 12 && net2->bias.item<double>() == 11;
  std::printf("%s\n", ok ? "consumer ok" : "consumer WRONG");
  return ok ? 0 : 1;
}
