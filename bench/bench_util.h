// Shared by the bench programs: process CPU time and the machine's load, printed with each result
// because on a shared machine wall time alone says little.
#pragma once

#include <time.h>

#include <cstdio>

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

}  // namespace nyto::bench
