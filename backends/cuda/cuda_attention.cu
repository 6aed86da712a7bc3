// The CUDA fused attention: FlashAttention's tiled online softmax (Dao et al., FlashAttention-2, Algorithm 1)
// as a plain FP32 SIMT kernel. Contract: core/ops.h (attention); oracle: backends/reference/attention.cpp.
//
// Rows. For one KV head the "rows" are its (query, query head of the group) pairs, row r = query r / group,
// head kvh * group + r % group, so a block's rows are consecutive queries x every head of the group and each
// K/V tile a block loads into shared memory serves all of them (GQA/MQA/MLA read the cache once per group).
//
// Block = 4 rows per warp x n_warps (1..8) x one KV head x one slice of the key sequence.
//   - its queries (pre-scaled by `scale`) sit in shared memory as floats;
//   - per tile of 32 keys (one per lane) the block converts K (and V unless V is K's own rows, MLA) to
//     floats in shared memory, every warp scores its 4 rows against the tile (lane j = key j), applies
//     softcap and mask, and folds the scores into its rows' running max / sum by warp shuffles;
//   - each lane keeps its rows' output columns lane + 32 i (i < NC) in registers, rescaled per tile.
// A tile whose occupied positions (min/max over it, so unsorted ring caches work), or with several
// sequences whose sequence range, no query of the block can see is skipped without touching K or V; every
// warp derives that decision from the same k_pos / k_seq and q_pos / q_seq values, so the block stays in
// step around __syncthreads().
//
// Split-KV (decode, or any launch with too few blocks for the GPU): blockIdx.z takes a slice of the key
// tiles and writes its rows' unnormalized outputs and (max, sum) to scratch; merge_splits combines the
// slices by log-sum-exp. A row with no visible key ends with sum 0 and yields zeros, as the contract says.
#include <algorithm>
#include <climits>
#include <cmath>

#include "backends/cuda/cuda_common.cuh"
#include "core/error.h"
#include "core/ops.h"
#include "core/quant.h"
#include "core/types.h"

namespace tessera::cuda {

namespace {

constexpr int kTileKeys = 32;     // keys per K/V tile: one per lane of a warp
constexpr int kRowsPerWarp = 4;   // query rows each warp scores and accumulates
constexpr int kMaxWarps = 8;      // 256 threads, 32 rows per block
constexpr int kMinLoadWarps = 4;  // at least 128 threads convert each tile, even when the block has few rows
constexpr int kMaxDk = 576;       // MLA's key head dim (512 latent + 64 rope): the widest of the supported models
constexpr int kMaxDv = 512;       // 32 lanes x 16 registers per row: NC = 16 is the largest bucket
constexpr int kMaxSplits = 128;   // also the size of merge_splits' shared weight table
constexpr size_t kMaxPartialBytes = size_t(256) << 20;  // scratch cap for split partials
constexpr unsigned kFullMask = 0xffffffffu;

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Shared-memory row strides in floats. Queries are read as float4 broadcasts: any multiple of 4. Key rows
// are read as float4 by 32 lanes at once (lane j reads row j): a stride of 4 mod 32 words puts each
// quarter-warp's eight 16-byte reads in distinct banks. Value rows are read along the row: any stride.
struct SmemLayout {
    int ldq, ldk, ldv;
    int64_t floats(int n_warps, bool v_in_k) const {
        return int64_t(n_warps) * kRowsPerWarp * ldq + int64_t(kTileKeys) * ldk + (v_in_k ? 0 : int64_t(kTileKeys) * ldv);
    }
    size_t bytes(int n_warps, bool v_in_k) const { return size_t(floats(n_warps, v_in_k)) * sizeof(float); }
};

SmemLayout smem_layout(int64_t d_k, int64_t d_v) {
    return {int(round_up(d_k, 4)), int(round_up(d_k, 32) + 4), int(round_up(d_v, 4))};
}

struct AttnArgs {
    const char* q;
    int64_t q_nb1, q_nb2;
    const char* k;
    int64_t k_nb1, k_nb2;
    DType k_type;
    const char* v;
    int64_t v_nb1, v_nb2;
    DType v_type;
    bool v_in_k;  // v row j = the first d_v values of k row j: the K tile in shared memory serves as V
    const int32_t* q_pos;
    const int32_t* k_pos;
    const int32_t* q_seq;  // several sequences: each query's and each cell's sequence; null with one
    const int32_t* k_seq;
    char* out;
    int64_t out_nb1, out_nb2;
    float* part_o;   // split partials [split][kv head][row][d_v]; null when n_splits == 1
    float* part_ml;  // [split][kv head][row][2]: running max, sum
    int d_k, d_v, group, n_kv_head;
    int64_t n_q, n_kv, n_rows;  // n_rows = n_q * group rows per KV head
    int64_t n_kv_tiles;
    int n_splits;
    float scale, softcap;
    int window;
    bool causal;
    const float* sinks;  // [n_head] sink logits (gpt-oss) or null
    SmemLayout lay;
};

// The factor a finished row's unnormalized output is multiplied by: 1 / l, or with a sink logit
// exp(m - top) / (l exp(m - top) + exp(sink - top)), top = max(m, sink), so neither exponential overflows.
// m, l: the row's running max and sum. A row with no visible key (l == 0) gets 0: zeros, by contract.
__device__ __forceinline__ float row_normalizer(float m, float l, const float* sinks, int64_t head) {
    if (!(l > 0.0f)) return 0.0f;
    if (!sinks) return 1.0f / l;
    const float sink = sinks[head];
    const float top = fmaxf(m, sink);
    const float keep = expf(m - top);
    return keep / (l * keep + expf(sink - top));
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, o));
    return x;
}
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(kFullMask, x, o);
    return x;
}
__device__ __forceinline__ int warp_min_i(int x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x = min(x, __shfl_xor_sync(kFullMask, x, o));
    return x;
}
__device__ __forceinline__ int warp_max_i(int x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x = max(x, __shfl_xor_sync(kFullMask, x, o));
    return x;
}

// core/ops.h's visibility rule, verbatim (64-bit difference: positions are arbitrary int32).
__device__ __forceinline__ bool visible(int qp, int kp, bool causal, int window) {
    return kp >= 0 && (!causal || kp <= qp) && (window == 0 || int64_t(qp) - int64_t(kp) < int64_t(window));
}

// Rows [0, nk) of one KV head's tile (row j at base + j * row_stride, d contiguous elements) converted to
// floats at dst + j * ld, one warp per row so each warp reads a row front to back. Columns [d, pad_to) are
// zeroed: the float4 score loop runs over the padded length. Conversions match core's to_float exactly
// (f16 -> f32 is exact; q8_0 is qs * d in float, one rounding, as dequantize_row_q8_0).
__device__ void load_tile(DType type, const char* __restrict__ base, int64_t row_stride, int nk, int d, int pad_to,
                          float* __restrict__ dst, int ld, int warp, int n_warps, int lane) {
    for (int j = warp; j < nk; j += n_warps) {
        const char* row = base + int64_t(j) * row_stride;
        float* out = dst + j * ld;
        if (type == DType::F32) {
            const float* x = reinterpret_cast<const float*>(row);
            for (int c = lane; c < d; c += 32) out[c] = x[c];
        } else if (type == DType::F16) {
            const __half* x = reinterpret_cast<const __half*>(row);
            for (int c = lane; c < d; c += 32) out[c] = __half2float(x[c]);
        } else {  // Q8_0 (attention_ok admits nothing else); d is a multiple of 32, so lane = index in block
            const block_q8_0* b = reinterpret_cast<const block_q8_0*>(row);
            for (int c = lane; c < d; c += 32) {
                const block_q8_0& blk = b[c / QK8_0];
                out[c] = float(blk.qs[c % QK8_0]) * __half2float(__ushort_as_half(blk.d));
            }
        }
        for (int c = d + lane; c < pad_to; c += 32) out[c] = 0.0f;
    }
}

// One block: rows [r0, r0 + 4 * n_warps) of KV head blockIdx.y over key-tile slice blockIdx.z.
// NC: output columns per lane / 32 (d_v <= 32 * NC), so the accumulators are a fixed register array.
template <int NC>
__global__ void __launch_bounds__(kMaxWarps * 32) attention_kernel(const AttnArgs a) {
    TESSERA_DYNAMIC_SHARED(float4, smem_f4);
    float* smem = reinterpret_cast<float*>(smem_f4);
    const int n_warps = int(blockDim.x) / 32;
    const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
    const int block_rows = n_warps * kRowsPerWarp;
    const int ldq = a.lay.ldq, ldk = a.lay.ldk;
    float* qs = smem;                                              // [block_rows][ldq]
    float* ks = qs + block_rows * ldq;                             // [32][ldk]
    const float* vs = a.v_in_k ? ks : ks + kTileKeys * ldk;        // [32][ldv]
    float* vs_load = ks + kTileKeys * ldk;
    const int ldv = a.v_in_k ? ldk : a.lay.ldv;

    const int kvh = int(blockIdx.y);
    const int split = int(blockIdx.z);
    // last row blocks first: under a causal mask they see the most keys, so the long blocks start early
    const int64_t r0 = int64_t(gridDim.x - 1 - blockIdx.x) * block_rows;
    const int64_t r_end = min(r0 + block_rows, a.n_rows);

    // this warp's rows
    bool valid[kRowsPerWarp];
    int qpos[kRowsPerWarp], qseq[kRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        const int64_t r = r0 + warp * kRowsPerWarp + rr;
        valid[rr] = r < r_end;
        qpos[rr] = valid[rr] ? a.q_pos[r / a.group] : 0;
        qseq[rr] = valid[rr] && a.q_seq ? a.q_seq[r / a.group] : 0;
    }
    const bool warp_active = r0 + warp * kRowsPerWarp < r_end;

    // position range of the block's queries (at most block_rows <= 32 of them: one per lane)
    int qmin, qmax, qsmin = 0, qsmax = 0;
    {
        const int64_t q_first = r0 / a.group, q_last = (r_end - 1) / a.group;
        const bool mine = q_first + lane <= q_last;
        const int p = mine ? a.q_pos[q_first + lane] : 0;
        qmin = warp_min_i(mine ? p : INT_MAX);
        qmax = warp_max_i(mine ? p : INT_MIN);
        if (a.q_seq) {
            const int sq = mine ? a.q_seq[q_first + lane] : 0;
            qsmin = warp_min_i(mine ? sq : INT_MAX);
            qsmax = warp_max_i(mine ? sq : INT_MIN);
        }
    }

    // queries, scaled: (scale q) . k costs one multiply per query element instead of one per score
    for (int rl = warp; rl < block_rows; rl += n_warps) {
        const int64_t r = r0 + rl;
        float* dst = qs + rl * ldq;
        if (r < r_end) {
            const float* src = reinterpret_cast<const float*>(a.q + (int64_t(kvh) * a.group + r % a.group) * a.q_nb1 +
                                                              (r / a.group) * a.q_nb2);
            for (int c = lane; c < ldq; c += 32) dst[c] = c < a.d_k ? src[c] * a.scale : 0.0f;
        } else {
            for (int c = lane; c < ldq; c += 32) dst[c] = 0.0f;
        }
    }

    float acc[kRowsPerWarp][NC];
    float m[kRowsPerWarp], l[kRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        m[rr] = -INFINITY;
        l[rr] = 0.0f;
#pragma unroll
        for (int i = 0; i < NC; ++i) acc[rr][i] = 0.0f;
    }

    const int64_t t_begin = a.n_kv_tiles * split / a.n_splits;
    const int64_t t_end = a.n_kv_tiles * (split + 1) / a.n_splits;
    const char* k_head = a.k + int64_t(kvh) * a.k_nb1;
    const char* v_head = a.v + int64_t(kvh) * a.v_nb1;
    const int n4 = ldq / 4;  // float4 steps over the padded key length (ldq = d_k rounded up to 4)

    for (int64_t t = t_begin; t < t_end; ++t) {
        const int64_t j0 = t * kTileKeys;
        const int nk = int(min(int64_t(kTileKeys), a.n_kv - j0));
        const int kp = lane < nk ? a.k_pos[j0 + lane] : -1;
        // Skip the tile when no query of the block sees any of its keys. Every warp reduces the same 32
        // positions, so every warp takes the same branch (needed: the loop body has __syncthreads).
        const int kmin = warp_min_i(kp >= 0 ? kp : INT_MAX);
        const int kmax = warp_max_i(kp >= 0 ? kp : -1);
        if (kmax < 0) continue;                                                    // all slots empty
        if (a.causal && kmin > qmax) continue;                                     // all in every query's future
        if (a.window > 0 && int64_t(qmin) - int64_t(kmax) >= a.window) continue;  // all slid out of every window
        const int ks_cell = a.k_seq && kp >= 0 ? a.k_seq[j0 + lane] : 0;
        if (a.k_seq) {  // all cells of sequences no query of the block is in
            const int ksmin = warp_min_i(kp >= 0 ? ks_cell : INT_MAX);
            const int ksmax = warp_max_i(kp >= 0 ? ks_cell : INT_MIN);
            if (ksmax < qsmin || ksmin > qsmax) continue;
        }

        __syncthreads();  // the previous tile's K/V reads are done
        load_tile(a.k_type, k_head + j0 * a.k_nb2, a.k_nb2, nk, a.d_k, ldq, ks, ldk, warp, n_warps, lane);
        if (!a.v_in_k)
            load_tile(a.v_type, v_head + j0 * a.v_nb2, a.v_nb2, nk, a.d_v, a.d_v, vs_load, ldv, warp, n_warps, lane);
        __syncthreads();
        if (!warp_active) continue;  // this warp only helped load

        // scores: lane j = key j against the warp's 4 rows. Rows j >= nk of ks hold stale data; their
        // scores are replaced (not combined) by -inf below, so nothing of them survives.
        float s[kRowsPerWarp] = {};
        {
            const float4* k4 = reinterpret_cast<const float4*>(ks + lane * ldk);
            const float4* q4 = reinterpret_cast<const float4*>(qs + warp * kRowsPerWarp * ldq);
            for (int c = 0; c < n4; ++c) {
                const float4 kv = k4[c];
#pragma unroll
                for (int rr = 0; rr < kRowsPerWarp; ++rr) {
                    const float4 qv = q4[rr * n4 + c];
                    s[rr] = fmaf(qv.x, kv.x, s[rr]);
                    s[rr] = fmaf(qv.y, kv.y, s[rr]);
                    s[rr] = fmaf(qv.z, kv.z, s[rr]);
                    s[rr] = fmaf(qv.w, kv.w, s[rr]);
                }
            }
        }

        // softcap, mask, online softmax step (each row's statistics are warp-uniform after the reductions)
        float p[kRowsPerWarp];
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) {
            float x = s[rr];
            if (a.softcap > 0.0f) x = a.softcap * tanhf(x / a.softcap);
            const bool same_seq = !a.k_seq || ks_cell == qseq[rr];
            x = visible(qpos[rr], kp, a.causal, a.window) && same_seq && valid[rr] ? x : -INFINITY;
            const float m_new = fmaxf(m[rr], warp_max(x));
            float factor = 1.0f;
            if (m_new == -INFINITY) {  // nothing visible to this row yet: exp(-inf - -inf) would be NaN
                p[rr] = 0.0f;
            } else {
                p[rr] = expf(x - m_new);       // masked keys: exp(-inf) = 0
                factor = expf(m[rr] - m_new);  // first visible tile: m = -inf, factor 0 (acc and l are 0)
            }
            l[rr] = l[rr] * factor + warp_sum(p[rr]);
            m[rr] = m_new;
#pragma unroll
            for (int i = 0; i < NC; ++i) acc[rr][i] *= factor;
        }

        // acc += p . V: key j's weights come from lane j; lane owns columns lane + 32 i
        for (int j = 0; j < nk; ++j) {
            float pj[kRowsPerWarp];
#pragma unroll
            for (int rr = 0; rr < kRowsPerWarp; ++rr) pj[rr] = __shfl_sync(kFullMask, p[rr], j);
            const float* vrow = vs + j * ldv;
#pragma unroll
            for (int i = 0; i < NC; ++i) {
                const int c = lane + 32 * i;
                if (c < a.d_v) {
                    const float vv = vrow[c];
#pragma unroll
                    for (int rr = 0; rr < kRowsPerWarp; ++rr) acc[rr][i] = fmaf(pj[rr], vv, acc[rr][i]);
                }
            }
        }
    }

#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        if (!valid[rr]) continue;
        const int64_t r = r0 + warp * kRowsPerWarp + rr;
        if (a.n_splits == 1) {
            const int64_t h = int64_t(kvh) * a.group + r % a.group;
            float* out = reinterpret_cast<float*>(a.out + h * a.out_nb1 + (r / a.group) * a.out_nb2);
            const float inv = row_normalizer(m[rr], l[rr], a.sinks, h);  // no visible key: zeros, by contract
#pragma unroll
            for (int i = 0; i < NC; ++i) {
                const int c = lane + 32 * i;
                if (c < a.d_v) out[c] = acc[rr][i] * inv;
            }
        } else {
            const int64_t idx = (int64_t(split) * a.n_kv_head + kvh) * a.n_rows + r;
            float* po = a.part_o + idx * a.d_v;
#pragma unroll
            for (int i = 0; i < NC; ++i) {
                const int c = lane + 32 * i;
                if (c < a.d_v) po[c] = acc[rr][i];
            }
            if (lane == 0) {
                a.part_ml[idx * 2] = m[rr];
                a.part_ml[idx * 2 + 1] = l[rr];
            }
        }
    }
}

struct MergeArgs {
    const float* part_o;
    const float* part_ml;
    char* out;
    int64_t out_nb1, out_nb2;
    int d_v, group, n_kv_head, n_splits;
    int64_t n_rows;
    const float* sinks;  // [n_head] or null
};

// One block per (row, KV head): out = sum_s w_s o_s / sum_s w_s l_s with w_s = exp(m_s - max_s m_s).
// Slices that saw no visible key (m_s = -inf) weigh 0; a row no slice saw is zeros.
__global__ void merge_splits(const MergeArgs a) {
    __shared__ float w[kMaxSplits];
    const int64_t r = blockIdx.x;
    const int kvh = int(blockIdx.y);
    auto slot = [&](int s) { return (int64_t(s) * a.n_kv_head + kvh) * a.n_rows + r; };
    float mx = -INFINITY;
    for (int s = 0; s < a.n_splits; ++s) mx = fmaxf(mx, a.part_ml[slot(s) * 2]);
    for (int s = int(threadIdx.x); s < a.n_splits; s += int(blockDim.x)) {
        const float ms = a.part_ml[slot(s) * 2];
        w[s] = (ms == -INFINITY) ? 0.0f : expf(ms - mx);
    }
    __syncthreads();
    float total = 0.0f;
    for (int s = 0; s < a.n_splits; ++s) total += w[s] * a.part_ml[slot(s) * 2 + 1];
    const int64_t h = int64_t(kvh) * a.group + r % a.group;
    float* out = reinterpret_cast<float*>(a.out + h * a.out_nb1 + (r / a.group) * a.out_nb2);
    const float inv = mx == -INFINITY ? 0.0f : row_normalizer(mx, total, a.sinks, h);
    for (int c = int(threadIdx.x); c < a.d_v; c += int(blockDim.x)) {
        float sum = 0.0f;
        for (int s = 0; s < a.n_splits; ++s)
            if (w[s] != 0.0f) sum += w[s] * a.part_o[slot(s) * a.d_v + c];
        out[c] = sum * inv;
    }
}

// Shared memory the current device lets one block opt into (0 if no device can be asked). attention_ok runs
// for every attention node of every graph, so each device is asked once (per thread: no locking needed).
int device_smem_limit(int device) {
    constexpr int kDevices = 64;
    thread_local int known[kDevices] = {};  // 0 = not asked yet (a real limit is never 0)
    if (device >= 0 && device < kDevices && known[device] > 0) return known[device];
    int limit = 0;
    if (cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
        cudaGetLastError();  // clear it: the next TESSERA_CUDA_LAUNCHED() must not report this query
        return 0;
    }
    if (device >= 0 && device < kDevices) known[device] = limit;
    return limit;
}

bool cache_ok(const Tensor& t) {
    if (t.type != DType::F32 && t.type != DType::F16 && t.type != DType::Q8_0) return false;
    const TypeTraits& tr = type_traits(t.type);
    // contiguous rows of whole blocks; rows start at element-aligned offsets (the loader reads f32 as float,
    // f16 as 2-byte halves, q8_0 blocks through their 2-byte scale)
    const size_t align = t.type == DType::F32 ? 4 : 2;
    return t.nb[0] == tr.block_bytes && t.ne[0] % tr.block_size == 0 && t.nb[1] % align == 0 &&
           t.nb[2] % align == 0 && t.ne[3] == 1;
}

template <int NC>
void launch(const AttnArgs& a, dim3 grid, int n_warps, size_t smem, cudaStream_t stream) {
    if (smem > 48 * 1024)  // above the default per-block limit a kernel must opt in
        TESSERA_CUDA(cudaFuncSetAttribute(attention_kernel<NC>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    TESSERA_LAUNCH(grid, unsigned(n_warps * 32), smem, stream, attention_kernel<NC>)(a);
    TESSERA_CUDA_LAUNCHED();
}

}  // namespace

// Accepts what attention_kernel reads correctly, declines the rest (the host reference then runs it):
//   - q F32 with contiguous 4-byte-aligned rows (any head / token strides); q_pos, k_pos (q_seq, k_seq) I32
//     contiguous;
//   - k, v F32 / F16 / Q8_0 with contiguous rows (the tile loader walks each row linearly) and row strides
//     aligned for the element loads; 3-D only, as core/ops.h builds them;
//   - output F32 and contiguous, as the reference and cpu backends demand (so all backends accept the same);
//   - d_k <= 576 and d_v <= 512: the largest register bucket is 16 columns per lane (32 x 16 = 512), and
//     MLA's 576 is the largest key width any model uses;
//   - n_kv_head <= 65535 (grid y) and shared memory for a one-warp block fits the current device (a
//     d_k = 576 / d_v = 512 pair needs ~150 KB with separate V: fine on A100/H100, not on 99 KB parts).
bool attention_ok(const Tensor& node) {
    if (node.op != Op::Attention) return false;
    for (int i = 0; i < 5; ++i)
        if (!node.src[i]) return false;
    if (const Tensor* sinks = attention_spec(node).sinks;
        sinks && (sinks->type != DType::F32 || !sinks->is_contiguous() || sinks->ne[0] != node.src[0]->ne[1]))
        return false;
    if (const AttentionSpec spec = attention_spec(node); spec.q_seq || spec.k_seq) {
        if (!spec.q_seq || !spec.k_seq) return false;
        for (const Tensor* t : {spec.q_seq, spec.k_seq})
            if (t->type != DType::I32 || t->nb[0] != 4) return false;
        if (spec.q_seq->ne[0] != node.src[0]->ne[2] || spec.k_seq->ne[0] != node.src[1]->ne[2]) return false;
    }
    const Tensor& q = *node.src[0];
    const Tensor& k = *node.src[1];
    const Tensor& v = *node.src[2];
    const Tensor& q_pos = *node.src[3];
    const Tensor& k_pos = *node.src[4];
    if (q.type != DType::F32 || q.nb[0] != sizeof(float) || q.nb[1] % 4 != 0 || q.nb[2] % 4 != 0 || q.ne[3] != 1)
        return false;
    if (q_pos.type != DType::I32 || q_pos.nb[0] != 4 || k_pos.type != DType::I32 || k_pos.nb[0] != 4) return false;
    if (q_pos.ne[0] != q.ne[2] || k_pos.ne[0] != k.ne[2]) return false;
    if (!cache_ok(k) || !cache_ok(v)) return false;
    if (node.type != DType::F32 || !node.is_contiguous()) return false;
    const int64_t d_k = q.ne[0], d_v = v.ne[0], n_head = q.ne[1], n_kv_head = k.ne[1];
    if (k.ne[0] != d_k || d_k < 1 || d_k > kMaxDk || d_v < 1 || d_v > kMaxDv) return false;
    if (n_kv_head < 1 || n_kv_head > 65535 || n_head % n_kv_head != 0 || v.ne[1] != n_kv_head || v.ne[2] != k.ne[2])
        return false;
    if (n_head / n_kv_head > INT_MAX) return false;
    if (node.ne[0] != d_v || node.ne[1] != n_head || node.ne[2] != q.ne[2]) return false;
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess) {
        cudaGetLastError();  // no usable device: decline, and leave no error for the next launch check
        return false;
    }
    const size_t need = smem_layout(d_k, d_v).bytes(1, /*v_in_k=*/false);
    return need <= size_t(device_smem_limit(device));
}

void attention(const Tensor& node, Context& ctx) {
    TESSERA_CHECK(attention_ok(node), "cuda attention '%s': unsupported types or layout", node.name.c_str());
    const Tensor& q = *node.src[0];
    const Tensor& k = *node.src[1];
    const Tensor& v = *node.src[2];
    const int64_t d_k = q.ne[0], d_v = v.ne[0], n_head = q.ne[1], n_q = q.ne[2];
    const int64_t n_kv_head = k.ne[1], n_kv = k.ne[2];
    const int64_t group = n_head / n_kv_head;
    if (n_q == 0 || n_head == 0 || d_v == 0) return;
    // element loads need element-aligned row starts (views may start anywhere)
    for (const Tensor* t : {&k, &v})
        TESSERA_CHECK(reinterpret_cast<uintptr_t>(t->data) % (t->type == DType::F32 ? 4 : 2) == 0,
                      "cuda attention '%s': '%s' starts at a misaligned address", node.name.c_str(), t->name.c_str());
    TESSERA_CHECK(reinterpret_cast<uintptr_t>(q.data) % 4 == 0, "cuda attention '%s': q '%s' is misaligned",
                  node.name.c_str(), q.name.c_str());

    AttnArgs a{};
    a.q = static_cast<const char*>(q.data);
    a.q_nb1 = int64_t(q.nb[1]);
    a.q_nb2 = int64_t(q.nb[2]);
    a.k = static_cast<const char*>(k.data);
    a.k_nb1 = int64_t(k.nb[1]);
    a.k_nb2 = int64_t(k.nb[2]);
    a.k_type = k.type;
    a.v = static_cast<const char*>(v.data);
    a.v_nb1 = int64_t(v.nb[1]);
    a.v_nb2 = int64_t(v.nb[2]);
    a.v_type = v.type;
    // MLA: v is the first d_v values of each k row (same storage and strides): the K tile serves as V
    a.v_in_k = v.data == k.data && v.type == k.type && v.nb[1] == k.nb[1] && v.nb[2] == k.nb[2] && d_v <= d_k;
    a.q_pos = node.src[3]->data_as<const int32_t>();
    a.k_pos = node.src[4]->data_as<const int32_t>();
    const AttentionSpec seqs = attention_spec(node);
    a.q_seq = seqs.q_seq ? seqs.q_seq->data_as<const int32_t>() : nullptr;
    a.k_seq = seqs.k_seq ? seqs.k_seq->data_as<const int32_t>() : nullptr;
    a.out = static_cast<char*>(node.data);
    a.out_nb1 = int64_t(node.nb[1]);
    a.out_nb2 = int64_t(node.nb[2]);
    a.d_k = int(d_k);
    a.d_v = int(d_v);
    a.group = int(group);
    a.n_kv_head = int(n_kv_head);
    a.n_q = n_q;
    a.n_kv = n_kv;
    a.n_rows = n_q * group;
    a.n_kv_tiles = (n_kv + kTileKeys - 1) / kTileKeys;
    const AttentionSpec spec = attention_spec(node);
    a.scale = spec.scale;
    a.softcap = spec.softcap;
    a.window = spec.window;
    a.causal = spec.causal;
    a.sinks = spec.sinks ? spec.sinks->data_as<const float>() : nullptr;
    a.lay = smem_layout(d_k, d_v);

    // Warps: enough for the rows (4 each), at least kMinLoadWarps so a tile is converted by 128 threads,
    // fewer only when the device's shared memory cannot hold the block.
    int n_warps = kMinLoadWarps;
    while (n_warps < kMaxWarps && int64_t(n_warps) * kRowsPerWarp < a.n_rows) n_warps *= 2;
    const size_t limit = size_t(device_smem_limit(ctx.device));
    while (n_warps > 1 && a.lay.bytes(n_warps, a.v_in_k) > limit) n_warps /= 2;
    const size_t smem = a.lay.bytes(n_warps, a.v_in_k);
    TESSERA_CHECK(smem <= limit, "cuda attention '%s': needs %zu bytes of shared memory, the device allows %zu",
                  node.name.c_str(), smem, limit);
    const int64_t block_rows = int64_t(n_warps) * kRowsPerWarp;
    const int64_t row_blocks = (a.n_rows + block_rows - 1) / block_rows;
    TESSERA_CHECK(row_blocks <= INT_MAX, "cuda attention '%s': too many queries", node.name.c_str());

    // Split the keys when the blocks are too few to fill the GPU (decode, short chunks): ~4 blocks per SM,
    // each slice at least 2 tiles (64 keys), and no more slices than keep the partials' traffic (written
    // once, read once by the merge) below the cache bytes the slices read: with many rows per KV head
    // (MQA, MLA) a slice's partial outputs would otherwise outweigh its keys.
    const int64_t base_blocks = row_blocks * n_kv_head;
    const int64_t sms = ctx.sm_count > 0 ? ctx.sm_count : 1;
    int64_t n_splits = 1;
    if (base_blocks < 2 * sms && a.n_kv_tiles >= 4) {
        auto partial_bytes = [&](int64_t s) { return size_t(s * n_kv_head * a.n_rows * (d_v + 2)) * sizeof(float); };
        const size_t cache_bytes =
            size_t(n_kv * n_kv_head) * (k.row_bytes() + (a.v_in_k ? 0 : v.row_bytes()));
        const int64_t traffic_cap = int64_t(cache_bytes / std::max<size_t>(1, 2 * partial_bytes(1)));
        n_splits = std::min<int64_t>(
            {(4 * sms + base_blocks - 1) / base_blocks, a.n_kv_tiles / 2, traffic_cap, kMaxSplits});
        n_splits = std::max<int64_t>(n_splits, 1);
        while (n_splits > 1 && partial_bytes(n_splits) > kMaxPartialBytes) n_splits /= 2;
        if (n_splits > 1) {
            float* part = static_cast<float*>(ctx.scratch.get(0, partial_bytes(n_splits), ctx.stream));
            a.part_o = part;
            a.part_ml = part + n_splits * n_kv_head * a.n_rows * d_v;
        }
    }
    a.n_splits = int(n_splits);

    const dim3 grid{unsigned(row_blocks), unsigned(n_kv_head), unsigned(n_splits)};
    if (d_v <= 64)
        launch<2>(a, grid, n_warps, smem, ctx.stream);
    else if (d_v <= 128)
        launch<4>(a, grid, n_warps, smem, ctx.stream);
    else if (d_v <= 256)
        launch<8>(a, grid, n_warps, smem, ctx.stream);
    else
        launch<16>(a, grid, n_warps, smem, ctx.stream);

    if (n_splits > 1) {
        MergeArgs ma{a.part_o, a.part_ml, a.out,       a.out_nb1, a.out_nb2, a.d_v,
                     a.group,  a.n_kv_head, a.n_splits, a.n_rows,  a.sinks};
        TESSERA_LAUNCH(dim3(unsigned(a.n_rows), unsigned(n_kv_head)), 128, 0, ctx.stream, merge_splits)(ma);
        TESSERA_CUDA_LAUNCHED();
    }
}

}  // namespace tessera::cuda
