// OpenMP for the benchmark commands' helper loops (bandwidth read-sums, buffer fills), or one thread where
// the compiler has none (Apple clang without Homebrew's libomp): the loops' `#pragma omp` lines are then
// ignored and these stand-ins say there is one thread. The cpu backend itself never uses OpenMP (it has its
// own thread pool), so only the bandwidth figures of `tessera bench` read lower without it.
#pragma once
#if defined(_OPENMP)
#include <omp.h>
#else
#include <algorithm>
#include <thread>
inline int omp_get_num_threads() { return 1; }
inline int omp_get_thread_num() { return 0; }
inline int omp_get_num_procs() { return int(std::max(1u, std::thread::hardware_concurrency())); }
#endif
