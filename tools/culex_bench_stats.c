/* culex_bench_stats.c: the latency histogram and the clock.
 *
 * The histogram is recorded on the hot path of every received message, so it is a fixed
 * array indexed with one count-leading-zeros: no allocation, no floating point except the
 * running sum for the mean. Threads keep their own and the main thread merges them. */
#include <time.h>

#include "culex_bench.h"

uint64_t cx_bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t bucket_of(uint64_t v)
{
    if (v < (1u << CX_BENCH_HIST_SUB))
        return (size_t)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    if (e >= CX_BENCH_HIST_TOP)
        return CX_BENCH_HIST_BUCKETS - 1;
    unsigned shift = e - CX_BENCH_HIST_SUB;
    uint64_t m = v >> shift; /* in [2^SUB, 2^(SUB+1)) */
    return ((size_t)(shift + 1) << CX_BENCH_HIST_SUB) + (size_t)(m - (1u << CX_BENCH_HIST_SUB));
}

/* Largest value that falls in bucket i. */
static uint64_t bucket_top(size_t i)
{
    if (i < (1u << CX_BENCH_HIST_SUB))
        return i;
    unsigned shift = (unsigned)(i >> CX_BENCH_HIST_SUB) - 1;
    uint64_t m = (i & ((1u << CX_BENCH_HIST_SUB) - 1)) + (1u << CX_BENCH_HIST_SUB);
    return ((m + 1) << shift) - 1;
}

void cx_bench_hist_record(cx_bench_hist_t *h, uint64_t v)
{
    h->b[bucket_of(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v > h->max)
        h->max = v;
}

void cx_bench_hist_merge(cx_bench_hist_t *into, const cx_bench_hist_t *from)
{
    for (size_t i = 0; i < CX_BENCH_HIST_BUCKETS; i++)
        into->b[i] += from->b[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->max > into->max)
        into->max = from->max;
}

uint64_t cx_bench_hist_quantile(const cx_bench_hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (size_t i = 0; i < CX_BENCH_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t top = bucket_top(i);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}
