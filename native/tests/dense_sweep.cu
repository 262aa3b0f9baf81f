// Tuning sweep for the dense kernel, Node-free: for Llama-3 block shapes and a list of M, times every compiled
// configuration that fits M and a range of split-K factors under the benchmark protocol (native/bench harness:
// CUDA graphs, rotated weights past 4x L2), next to cuBLAS fp16. Prints the best choice per problem; the dispatch
// heuristic in packages/core/src/dispatch/dispatch.ts is tuned from its output (docs/perf-notes.md).
// Usage: dense_sweep [M,M,...] [fp16|bf16] [config,config,...|all] [overlap|serial]
//   (default: every compiled config that fits M; launches overlapping the previous call, the library's default;
//   "serial": MARLIN_DENSE_LAUNCH_SERIAL, each call waits for the previous one)
//   dense_sweep --rows FILE [fp16|bf16]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "marlin/bench.h"
#include "marlin/dense.h"

namespace {
struct Shape {
  const char* name;
  int k, n;
};
const Shape kShapes[] = {{"8b.qkv", 4096, 6144},      {"8b.o", 4096, 4096},       {"8b.gate_up", 4096, 28672},
                         {"8b.down", 14336, 4096},    {"70b.qkv", 8192, 10240},   {"70b.o", 8192, 8192},
                         {"70b.gate_up", 8192, 57344}, {"70b.down", 28672, 8192}};
}  // namespace

// `dense_sweep --rows FILE [bf16]`: times exactly the launches listed in FILE, one per line "M N K config splits
// [tail_splits]" (e.g. the dispatched choices of a bench JSON; tail_splits: marlin_dense_launch.tail_splits, default 0),
// each with the default (overlapping) launch and with MARLIN_DENSE_LAUNCH_SERIAL, fp16 (or bf16), group 128: for A/B
// comparisons of two builds, or of two launches, on one machine. Prints "M N K config splits tail_splits overlap_us
// serial_us cluster tail_blocks" (cluster / tail_blocks: marlin_bench_gemm_result::cluster_size / ::tail_blocks).
int time_rows(const char* path, marlin_dtype dt) {
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) {
    std::printf("cannot open %s\n", path);
    return 2;
  }
  int bad = 0;
  double sum[2] = {0, 0};
  char line[256];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    int m, n, k, cfg, sp, tail = 0;
    if (std::sscanf(line, "%d %d %d %d %d %d", &m, &n, &k, &cfg, &sp, &tail) < 5) continue;
    double us[2] = {0, 0};
    int cluster = 0, tail_blocks = 0;
    for (int serial : {0, 1}) {
      marlin_bench_dense_args da{dt, m, n, k, 128, 0, cfg, sp, 11, 0, 0, serial, tail};
      marlin_bench_gemm_result r{};
      if (marlin_bench_dense_gemm(&da, &r) != MARLIN_OK) {
        std::printf("dense failed m=%d n=%d k=%d cfg=%d splits=%d tail=%d: %s\n", m, n, k, cfg, sp, tail,
                    marlin_bench_last_error());
        ++bad;
        continue;
      }
      us[serial] = r.timing.median_us;
      sum[serial] += us[serial];
      cluster = r.cluster_size;
      tail_blocks = r.tail_blocks;
    }
    std::printf("%d %d %d %d %d %d %.2f %.2f %d %d\n", m, n, k, cfg, sp, tail, us[0], us[1], cluster, tail_blocks);
  }
  std::fclose(f);
  std::printf("sum %.2f %.2f\n", sum[0], sum[1]);
  return bad == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc > 2 && std::strcmp(argv[1], "--rows") == 0)
    return time_rows(argv[2], argc > 3 && std::strcmp(argv[3], "bf16") == 0 ? MARLIN_BF16 : MARLIN_FP16);
  std::vector<int> ms = {1, 16, 32, 64, 128, 256, 1024};
  if (argc > 1) {
    ms.clear();
    for (char* tok = std::strtok(argv[1], ","); tok; tok = std::strtok(nullptr, ",")) ms.push_back(std::atoi(tok));
  }
  const marlin_dtype dt = (argc > 2 && std::strcmp(argv[2], "bf16") == 0) ? MARLIN_BF16 : MARLIN_FP16;
  std::vector<int> configs;  // ids of kernel-table.json need not be contiguous
  std::vector<bool> wanted(64, argc <= 3);
  if (argc > 3 && std::strcmp(argv[3], "all") == 0) wanted.assign(64, true);
  const int serial = argc > 4 && std::strcmp(argv[4], "serial") == 0 ? 1 : 0;
  if (argc > 3 && std::strcmp(argv[3], "all") != 0) {
    for (char* tok = std::strtok(argv[3], ","); tok; tok = std::strtok(nullptr, ",")) {
      const int id = std::atoi(tok);
      if (id >= 0 && id < 64) wanted[id] = true;
    }
  }
  for (int id = 0; id < 64; ++id) {
    int32_t info[4];
    if (wanted[id] && marlin_dense_config_info(id, info) == MARLIN_OK) configs.push_back(id);
  }
  int max_mt = 0;
  for (int id : configs) {
    int32_t info[4];
    marlin_dense_config_info(id, info);
    max_mt = info[0] > max_mt ? info[0] : max_mt;
  }
  const int split_options[] = {1, 2, 3, 4, 6, 8};
  std::printf("%-12s %5s | %8s %9s | %4s %6s | %8s\n", "shape", "M", "best_us", "cublas_us", "cfg", "splits", "speedup");
  for (int m : ms) {
    double sum_best = 0, sum_cublas = 0;
    for (const Shape& s : kShapes) {
      marlin_bench_cublas_args ca{dt, m, s.n, s.k, 7, 0, 0};
      marlin_bench_gemm_result cr{};
      if (marlin_bench_cublas_gemm(&ca, &cr) != MARLIN_OK) {
        std::printf("cublas failed: %s\n", marlin_bench_last_error());
        return 1;
      }
      double best = 1e30;
      int best_cfg = -1, best_splits = 0;
      std::string trail;
      for (int cfg : configs) {
        int32_t info[4];
        marlin_dense_config_info(cfg, info);
        const int mt = info[0];
        // Token tiles worth trying: from M/2 up to 2M (at least 8), or the largest ones when M exceeds them all.
        const bool fits = 2 * mt >= m && mt <= (m < 4 ? 8 : 2 * m);
        const bool big = m > max_mt && mt >= max_mt / 2;
        if (!fits && !big) continue;
        for (int sp : split_options) {
          marlin_bench_dense_args da{dt, m, s.n, s.k, 128, 0, cfg, sp, 11, 0, 0, serial};
          marlin_bench_gemm_result r{};
          if (marlin_bench_dense_gemm(&da, &r) != MARLIN_OK) {
            std::printf("dense failed cfg=%d splits=%d: %s\n", cfg, sp, marlin_bench_last_error());
            continue;
          }
          char buf[48];
          std::snprintf(buf, sizeof buf, " c%d/s%d=%.1f", cfg, sp, r.timing.median_us);
          trail += buf;
          if (r.timing.median_us < best) {
            best = r.timing.median_us;
            best_cfg = cfg;
            best_splits = sp;
          }
        }
      }
      sum_best += best;
      sum_cublas += cr.timing.median_us;
      std::printf("%-12s %5d | %8.2f %9.2f | %4d %6d | %7.2fx |%s\n", s.name, m, best, cr.timing.median_us, best_cfg,
                  best_splits, cr.timing.median_us / best, trail.c_str());
      if (&s == &kShapes[3] || &s == &kShapes[7]) {
        std::printf("%-12s %5d | %8.2f %9.2f |             | %7.2fx  block sum\n", &s == &kShapes[3] ? "8B block" : "70B block",
                    m, sum_best, sum_cublas, sum_cublas / sum_best);
        sum_best = sum_cublas = 0;
      }
    }
  }
  return 0;
}
