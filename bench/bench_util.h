// Shared by the bench programs: process CPU time and the machine's load, printed with each result
// because on a shared machine wall time alone says little.
#pragma once

#include <time.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace nyto::bench {

/// CPU time of the whole process (all threads), in ms.
inline double process_cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/// The 1-minute load average (/proc/loadavg), or -1 if unknown.
inline double load_avg() {
  double l = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &l) != 1) l = -1;
    std::fclose(f);
  }
  return l;
}

/// The host CPU, from /proc/cpuinfo: its model name ("unknown" if there is none) and whether it
/// has AVX-512F.
struct HostCpu {
  std::string model = "unknown";
  bool avx512f = false;
};
inline HostCpu host_cpu() {
  HostCpu h;
  if (FILE* f = std::fopen("/proc/cpuinfo", "r")) {
    char line[4096];
    while (std::fgets(line, sizeof line, f)) {
      if (h.model == "unknown" && std::strncmp(line, "model name", 10) == 0) {
        if (const char* p = std::strchr(line, ':')) {
          h.model = p + 2;
          while (!h.model.empty() && (h.model.back() == '\n' || h.model.back() == ' ')) h.model.pop_back();
        }
      }
      if (std::strncmp(line, "flags", 5) == 0 && std::strstr(line, " avx512f")) h.avx512f = true;
    }
    std::fclose(f);
  }
  return h;
}

}  // namespace nyto::bench
