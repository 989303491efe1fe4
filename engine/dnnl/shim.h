// shim.h: the C side of package dnnl. It is a header (not a .c file) so that
// the package still builds with CGO_ENABLED=0; it is included by exactly one
// Go file (cgo.go).
//
// Everything that differs between oneDNN 2.x and 3.x lives in the block
// guarded by DNNL_VERSION_MAJOR below; the rest of this file and all Go code
// are version-agnostic. Memory descriptors are handled as `cmd` (a pointer in
// both versions).
//
// A "plan" is a cached, ready-to-run sequence of primitives for one kernel
// call: reorders of inputs into the layout the main primitive wants, the main
// primitive, reorders of outputs back to the caller's layout. The caller's
// buffers are bound to "slots" on every execution (shim_exec), so no Go
// pointer is kept by C after a call returns.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <oneapi/dnnl/dnnl.h>

#include "wino.h"

// ---------------------------------------------------------------------------
// Version-specific part.
#if DNNL_VERSION_MAJOR >= 3

typedef const_dnnl_memory_desc_t cmd;

static cmd md_new(int nd, const dnnl_dim_t *dims, dnnl_format_tag_t tag) {
    dnnl_memory_desc_t m = NULL;
    dnnl_dims_t full = {0};
    for (int i = 0; i < nd && i < DNNL_MAX_NDIMS; i++) full[i] = dims[i];
    if (dnnl_memory_desc_create_with_tag(&m, nd, full, dnnl_f32, tag) != dnnl_success) return NULL;
    return m;
}
static void md_free(cmd m) {
    if (m) dnnl_memory_desc_destroy((dnnl_memory_desc_t)m);
}

static dnnl_status_t pd_conv_fwd(dnnl_primitive_desc_t *pd, dnnl_engine_t e, dnnl_alg_kind_t alg,
        cmd src, cmd w, cmd b, cmd dst, const dnnl_dim_t *st, const dnnl_dim_t *pl,
        const dnnl_dim_t *pr, dnnl_primitive_attr_t attr) {
    dnnl_dims_t dil = {0, 0};
    return dnnl_convolution_forward_primitive_desc_create(pd, e, dnnl_forward_training, alg, src, w,
            b, dst, st, dil, pl, pr, attr);
}
static dnnl_status_t pd_conv_bwd_data(dnnl_primitive_desc_t *pd, dnnl_engine_t e,
        dnnl_alg_kind_t alg, cmd dsrc, cmd w, cmd ddst, const dnnl_dim_t *st, const dnnl_dim_t *pl,
        const dnnl_dim_t *pr, const_dnnl_primitive_desc_t hint, dnnl_primitive_attr_t attr) {
    dnnl_dims_t dil = {0, 0};
    return dnnl_convolution_backward_data_primitive_desc_create(pd, e, alg, dsrc, w, ddst, st, dil,
            pl, pr, hint, attr);
}
static dnnl_status_t pd_conv_bwd_w(dnnl_primitive_desc_t *pd, dnnl_engine_t e, dnnl_alg_kind_t alg,
        cmd src, cmd dw, cmd db, cmd ddst, const dnnl_dim_t *st, const dnnl_dim_t *pl,
        const dnnl_dim_t *pr, const_dnnl_primitive_desc_t hint, dnnl_primitive_attr_t attr) {
    dnnl_dims_t dil = {0, 0};
    return dnnl_convolution_backward_weights_primitive_desc_create(pd, e, alg, src, dw, db, ddst, st,
            dil, pl, pr, hint, attr);
}
static dnnl_status_t pd_bn_fwd(dnnl_primitive_desc_t *pd, dnnl_engine_t e, dnnl_prop_kind_t prop,
        cmd data, float eps, unsigned flags, dnnl_primitive_attr_t attr) {
    return dnnl_batch_normalization_forward_primitive_desc_create(pd, e, prop, data, data, eps,
            flags, attr);
}
static dnnl_status_t pd_bn_bwd(dnnl_primitive_desc_t *pd, dnnl_engine_t e, cmd diff, cmd data,
        float eps, unsigned flags, const_dnnl_primitive_desc_t hint, dnnl_primitive_attr_t attr) {
    return dnnl_batch_normalization_backward_primitive_desc_create(pd, e, dnnl_backward, diff, diff,
            data, eps, flags, hint, attr);
}
static dnnl_status_t pd_eltwise_fwd(dnnl_primitive_desc_t *pd, dnnl_engine_t e,
        dnnl_alg_kind_t alg, cmd data, dnnl_primitive_attr_t attr) {
    return dnnl_eltwise_forward_primitive_desc_create(pd, e, dnnl_forward_training, alg, data,
            data, 0.f, 0.f, attr);
}
static dnnl_status_t pd_eltwise_bwd(dnnl_primitive_desc_t *pd, dnnl_engine_t e,
        dnnl_alg_kind_t alg, cmd diff, cmd data, const_dnnl_primitive_desc_t hint,
        dnnl_primitive_attr_t attr) {
    return dnnl_eltwise_backward_primitive_desc_create(pd, e, alg, diff, diff, data, 0.f, 0.f,
            hint, attr);
}
static dnnl_status_t pd_binary(dnnl_primitive_desc_t *pd, dnnl_engine_t e, dnnl_alg_kind_t alg,
        cmd s0, cmd s1, cmd dst, dnnl_primitive_attr_t attr) {
    return dnnl_binary_primitive_desc_create(pd, e, alg, s0, s1, dst, attr);
}
static dnnl_status_t pd_pool_fwd(dnnl_primitive_desc_t *pd, dnnl_engine_t e, dnnl_prop_kind_t prop,
        dnnl_alg_kind_t alg, cmd src, cmd dst, const dnnl_dim_t *st, const dnnl_dim_t *k,
        const dnnl_dim_t *pl, const dnnl_dim_t *pr, dnnl_primitive_attr_t attr) {
    dnnl_dims_t dil = {0, 0};
    return dnnl_pooling_forward_primitive_desc_create(pd, e, prop, alg, src, dst, st, k, dil, pl,
            pr, attr);
}
static dnnl_status_t pd_pool_bwd(dnnl_primitive_desc_t *pd, dnnl_engine_t e, dnnl_alg_kind_t alg,
        cmd dsrc, cmd ddst, const dnnl_dim_t *st, const dnnl_dim_t *k, const dnnl_dim_t *pl,
        const dnnl_dim_t *pr, const_dnnl_primitive_desc_t hint, dnnl_primitive_attr_t attr) {
    dnnl_dims_t dil = {0, 0};
    return dnnl_pooling_backward_primitive_desc_create(pd, e, alg, dsrc, ddst, st, k, dil, pl, pr,
            hint, attr);
}
static dnnl_status_t post_ops_relu(dnnl_post_ops_t po) {
    return dnnl_post_ops_append_eltwise(po, dnnl_eltwise_relu, 0.f, 0.f);
}

#else // oneDNN 2.x: an operation descriptor first, then dnnl_primitive_desc_create.

typedef const dnnl_memory_desc_t *cmd;

static cmd md_new(int nd, const dnnl_dim_t *dims, dnnl_format_tag_t tag) {
    dnnl_memory_desc_t *m = (dnnl_memory_desc_t *)malloc(sizeof *m);
    dnnl_dims_t full = {0};
    for (int i = 0; i < nd && i < DNNL_MAX_NDIMS; i++) full[i] = dims[i];
    if (!m) return NULL;
    if (dnnl_memory_desc_init_by_tag(m, nd, full, dnnl_f32, tag) != dnnl_success) {
        free(m);
        return NULL;
    }
    return m;
}
static void md_free(cmd m) { free((void *)m); }

#define PD_CREATE(pd, desc, attr, e, hint) dnnl_primitive_desc_create(pd, desc, attr, e, hint)

static dnnl_status_t pd_conv_fwd(dnnl_primitive_desc_t *pd, dnnl_engine_t e, dnnl_alg_kind_t alg,
        cmd src, cmd w, cmd b, cmd dst, const dnnl_dim_t *st, const dnnl_dim_t *pl,
        const dnnl_dim_t *pr, dnnl_primitive_attr_t attr) {
    dnnl_convolution_desc_t d;
    dnnl_status_t s = dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, alg, src, w, b,
            dst, st, pl, pr);
    return s != dnnl_success ? s : PD_CREATE(pd, &d, attr, e, NULL);
}
static dnnl_status_t pd_conv_bwd_data(dnnl_primitive_desc_t *pd, dnnl_engine_t e,
        dnnl_alg_kind_t alg, cmd dsrc, cmd w, cmd ddst, const dnnl_dim_t *st, const dnnl_dim_t *pl,
        const dnnl_dim_t *pr, const_dnnl_primitive_desc_t hint, dnnl_primitive_attr_t attr) {
    dnnl_convolution_desc_t d;
    dnnl_status_t s = dnnl_convolution_backward_data_desc_init(&d, alg, dsrc, w, ddst, st, pl, pr);
    return s != dnnl_success ? s : PD_CREATE(pd, &d, attr, e, hint);
}
static dnnl_status_t pd_conv_bwd_w(dnnl_primitive_desc_t *pd, dnnl_engine_t e, dnnl_alg_kind_t alg,
        cmd src, cmd dw, cmd db, cmd ddst, const dnnl_dim_t *st, const dnnl_dim_t *pl,
        const dnnl_dim_t *pr, const_dnnl_primitive_desc_t hint, dnnl_primitive_attr_t attr) {
    dnnl_convolution_desc_t d;
    dnnl_status_t s = dnnl_convolution_backward_weights_desc_init(&d, alg, src, dw, db, ddst, st,
            pl, pr);
    return s != dnnl_success ? s : PD_CREATE(pd, &d, attr, e, hint);
}
static dnnl_status_t pd_bn_fwd(dnnl_primitive_desc_t *pd, dnnl_engine_t e, dnnl_prop_kind_t prop,
        cmd data, float eps, unsigned flags, dnnl_primitive_attr_t attr) {
    dnnl_batch_normalization_desc_t d;
    dnnl_status_t s = dnnl_batch_normalization_forward_desc_init(&d, prop, data, eps, flags);
    return s != dnnl_success ? s : PD_CREATE(pd, &d, attr, e, NULL);
}
static dnnl_status_t pd_bn_bwd(dnnl_primitive_desc_t *pd, dnnl_engine_t e, cmd diff, cmd data,
        float eps, unsigned flags, const_dnnl_primitive_desc_t hint, dnnl_primitive_attr_t attr) {
    dnnl_batch_normalization_desc_t d;
    dnnl_status_t s = dnnl_batch_normalization_backward_desc_init(&d, dnnl_backward, diff, data,
            eps, flags);
    return s != dnnl_success ? s : PD_CREATE(pd, &d, attr, e, hint);
}
static dnnl_status_t pd_eltwise_fwd(dnnl_primitive_desc_t *pd, dnnl_engine_t e,
        dnnl_alg_kind_t alg, cmd data, dnnl_primitive_attr_t attr) {
    dnnl_eltwise_desc_t d;
    dnnl_status_t s = dnnl_eltwise_forward_desc_init(&d, dnnl_forward_training, alg, data, 0.f, 0.f);
    return s != dnnl_success ? s : PD_CREATE(pd, &d, attr, e, NULL);
}
static dnnl_status_t pd_eltwise_bwd(dnnl_primitive_desc_t *pd, dnnl_engine_t e,
        dnnl_alg_kind_t alg, cmd diff, cmd data, const_dnnl_primitive_desc_t hint,
        dnnl_primitive_attr_t attr) {
    dnnl_eltwise_desc_t d;
    dnnl_status_t s = dnnl_eltwise_backward_desc_init(&d, alg, diff, data, 0.f, 0.f);
    return s != dnnl_success ? s : PD_CREATE(pd, &d, attr, e, hint);
}
static dnnl_status_t pd_binary(dnnl_primitive_desc_t *pd, dnnl_engine_t e, dnnl_alg_kind_t alg,
        cmd s0, cmd s1, cmd dst, dnnl_primitive_attr_t attr) {
    dnnl_binary_desc_t d;
    dnnl_status_t s = dnnl_binary_desc_init(&d, alg, s0, s1, dst);
    return s != dnnl_success ? s : PD_CREATE(pd, &d, attr, e, NULL);
}
static dnnl_status_t pd_pool_fwd(dnnl_primitive_desc_t *pd, dnnl_engine_t e, dnnl_prop_kind_t prop,
        dnnl_alg_kind_t alg, cmd src, cmd dst, const dnnl_dim_t *st, const dnnl_dim_t *k,
        const dnnl_dim_t *pl, const dnnl_dim_t *pr, dnnl_primitive_attr_t attr) {
    dnnl_pooling_desc_t d;
    dnnl_status_t s = dnnl_pooling_forward_desc_init(&d, prop, alg, src, dst, st, k, pl, pr);
    return s != dnnl_success ? s : PD_CREATE(pd, &d, attr, e, NULL);
}
static dnnl_status_t pd_pool_bwd(dnnl_primitive_desc_t *pd, dnnl_engine_t e, dnnl_alg_kind_t alg,
        cmd dsrc, cmd ddst, const dnnl_dim_t *st, const dnnl_dim_t *k, const dnnl_dim_t *pl,
        const dnnl_dim_t *pr, const_dnnl_primitive_desc_t hint, dnnl_primitive_attr_t attr) {
    dnnl_pooling_desc_t d;
    dnnl_status_t s = dnnl_pooling_backward_desc_init(&d, alg, dsrc, ddst, st, k, pl, pr);
    return s != dnnl_success ? s : PD_CREATE(pd, &d, attr, e, hint);
}
static dnnl_status_t post_ops_relu(dnnl_post_ops_t po) {
    return dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_relu, 0.f, 0.f);
}

#endif
// End of the version-specific part.
// ---------------------------------------------------------------------------

enum { NSLOT = 10, MAXSTEP = 8, MAXARG = 12, MAXOWN = 12 };

typedef struct {
    dnnl_primitive_t prim;
    int serial; // run on one OpenMP thread (see memop_serial)
    int nargs;
    dnnl_exec_arg_t args[MAXARG];
    dnnl_memory_t scratch; // bound to the shared scratchpad on every run; may be NULL
} shim_step;

typedef struct {
    int nsteps, main; // main: index of the main primitive (for raw benchmarks)
    shim_step st[MAXSTEP];
    dnnl_memory_t user[NSLOT]; // caller buffers, rebound on every run
    int nown;
    dnnl_memory_t own[MAXOWN]; // internal buffers (reorder targets), owned
    size_t own_off[MAXOWN];    // their offsets in the shared arena g_arena
    size_t own_total;          // arena bytes this plan needs
    size_t ws_size; // bytes of workspace the caller must provide (0: none)
    char impl[96];  // implementation name of the main primitive
    int serial;     // steps run on one thread (memory-bound plans, see memop_serial)
    // building state
    int npost;
    shim_step post[MAXSTEP];
    // Winograd F(2x2,3x3) plans (wino.h) have no primitives: wk is the
    // convolution kind + 1, wd its dims, wh the last bound buffers.
    int wk;
    int64_t wd[13];
    void *wh[3];
} shim_plan;

// One context per process: the backend is a singleton per engine and all
// calls come from one OS thread.
static dnnl_engine_t g_eng;
static dnnl_stream_t g_stream;
static void *g_scratch;
static size_t g_scratch_size;

// g_arena backs every plan's internal buffers (reordered weights, masked
// gradients): plans run one at a time and none keeps data in them between
// runs, so they share one arena sized for the largest plan instead of each
// holding its own copy (for ResNet-18 that was 3 copies of all weights,
// about 140 MB).
static void *g_arena;
static size_t g_arena_size;

// g_nthr is the OpenMP pool size. Memory-bound primitives use it too:
// on a quiet machine two threads stream eltwise, binary, reorder and
// pooling ops nearly twice as fast as one. Batch norm is the exception:
// oneDNN's JIT batch norm synchronises its threads with spinning barriers
// inside the kernel, so when another process holds a core it took 5-10x
// longer on 2 threads than on one (0.56 s vs 0.09 s per ResNet-18 w1/4
// B=256 step). Its plans are therefore built either way and the Go side
// picks one per plan, by measured time or by rule (chooseBN in tune.go).
// g_serial_memops (SIMCLR_DNNL_SERIAL_MEMOPS) overrides that choice:
// -1 unset (batch norm as asked, others parallel), 1 every memory-bound
// primitive on one thread, 0 every one on the pool.
static int g_nthr = 1;
static int g_serial_memops = -1;
static int g_cur_nthr = -1; // last value given to omp_set_num_threads

static inline void use_threads(int n) {
    if (n != g_cur_nthr) {
        omp_set_num_threads(n);
        g_cur_nthr = n;
    }
}

// g_threads_seen counts the distinct OS threads that ever called into
// oneDNN through this file (each has its own OpenMP pool); the Go side
// promises it stays 1.
static int g_threads_seen;
static __thread int t_seen;
static inline void note_thread(void) {
    if (!t_seen) {
        t_seen = 1;
        __atomic_add_fetch(&g_threads_seen, 1, __ATOMIC_RELAXED);
    }
}
static int shim_threads_seen(void) { return __atomic_load_n(&g_threads_seen, __ATOMIC_RELAXED); }

// spawn_pool starts the OpenMP pool's n-1 worker threads with every signal
// blocked: threads inherit the creator's signal mask, and a signal handler
// (Go's, for SIGPROF while profiling or SIGINT on Ctrl-C) run on a worker's
// own stack in the middle of a JIT kernel corrupted memory (oneDNN's
// kernels may keep data below the stack pointer). Blocked there, signals
// go to Go's threads, which have signal stacks. libgomp keeps its workers,
// so later regions of at most n threads reuse them.
static void spawn_pool(int n) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
#pragma omp parallel num_threads(n)
    {
        __asm__ volatile("" ::: "memory");
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static int shim_init(int threads, char *err) {
    note_thread();
    if (threads > 0) {
        omp_set_num_threads(threads);
        g_cur_nthr = threads;
    }
    g_nthr = omp_get_max_threads();
    g_cur_nthr = g_nthr;
    spawn_pool(g_nthr);
    const char *sm = getenv("SIMCLR_DNNL_SERIAL_MEMOPS");
    g_serial_memops = !sm || !sm[0] ? -1 : sm[0] == '0' ? 0 : 1;
    if (g_eng) return 0;
    if (dnnl_engine_create(&g_eng, dnnl_cpu, 0) != dnnl_success) {
        snprintf(err, 256, "dnnl_engine_create failed");
        return -1;
    }
    if (dnnl_stream_create(&g_stream, g_eng, dnnl_stream_default_flags) != dnnl_success) {
        snprintf(err, 256, "dnnl_stream_create failed");
        return -1;
    }
    return 0;
}

static int shim_max_threads(void) { return g_nthr; }

// shim_memops_mode is g_serial_memops: -1 auto, 0 parallel, 1 serial.
static int shim_memops_mode(void) { return g_serial_memops; }

// memop_serial says whether a memory-bound primitive runs on one thread;
// want is the caller's wish (batch norm) or 0 (everything else).
static int memop_serial(int want) { return g_serial_memops >= 0 ? g_serial_memops : want; }

static void plan_free(shim_plan *p) {
    if (!p) return;
    for (int i = 0; i < p->nsteps; i++) {
        if (p->st[i].prim) dnnl_primitive_destroy(p->st[i].prim);
        if (p->st[i].scratch) dnnl_memory_destroy(p->st[i].scratch);
    }
    for (int i = 0; i < p->npost; i++) {
        if (p->post[i].prim) dnnl_primitive_destroy(p->post[i].prim);
    }
    for (int i = 0; i < NSLOT; i++)
        if (p->user[i]) dnnl_memory_destroy(p->user[i]);
    for (int i = 0; i < p->nown; i++)
        dnnl_memory_destroy(p->own[i]);
    free(p);
}

// tag_for maps (ndims, layout code) to a format tag. Layout codes: 0 plain,
// 8 nChw8c, 16 nChw16c.
static dnnl_format_tag_t tag_for(int nd, int lay) {
    if (nd == 4 && lay == 8) return dnnl_aBcd8b;
    if (nd == 4 && lay == 16) return dnnl_aBcd16b;
    if (lay != 0) return dnnl_format_tag_undef;
    switch (nd) {
    case 1: return dnnl_a;
    case 2: return dnnl_ab;
    case 3: return dnnl_abc;
    case 4: return dnnl_abcd;
    case 5: return dnnl_abcde;
    }
    return dnnl_format_tag_undef;
}

static cmd md_lay(int nd, const dnnl_dim_t *dims, int lay) {
    dnnl_format_tag_t t = tag_for(nd, lay);
    if (t == dnnl_format_tag_undef) return NULL;
    return md_new(nd, dims, t);
}

static int user_attr(dnnl_primitive_attr_t *attr) {
    if (dnnl_primitive_attr_create(attr) != dnnl_success) return -1;
    return dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user) == dnnl_success
            ? 0 : -1;
}

static void set_arg(shim_step *s, int arg, dnnl_memory_t m) {
    s->args[s->nargs].arg = arg;
    s->args[s->nargs].memory = m;
    s->nargs++;
}

static cmd pd_md(const_dnnl_primitive_desc_t pd, dnnl_query_t q, int i) {
    return dnnl_primitive_desc_query_md(pd, q, i);
}

// user_mem creates (once) the memory for caller slot s with descriptor md.
static dnnl_memory_t user_mem(shim_plan *p, int s, cmd md) {
    if (p->user[s]) return p->user[s];
    if (dnnl_memory_create(&p->user[s], md, g_eng, DNNL_MEMORY_NONE) != dnnl_success) return NULL;
    return p->user[s];
}

static dnnl_memory_t own_mem(shim_plan *p, cmd md) {
    if (p->nown == MAXOWN) return NULL;
    dnnl_memory_t m;
    if (dnnl_memory_create(&m, md, g_eng, DNNL_MEMORY_NONE) != dnnl_success) return NULL;
    size_t n = (dnnl_memory_desc_get_size(md) + 63) / 64 * 64;
    p->own_off[p->nown] = p->own_total;
    p->own_total += n;
    p->own[p->nown++] = m;
    if (p->own_total > g_arena_size) {
        // Grows at plan creation only; runs reuse it.
        free(g_arena);
        g_arena = aligned_alloc(64, p->own_total);
        g_arena_size = g_arena ? p->own_total : 0;
        if (!g_arena) return NULL;
    }
    return m;
}

static int reorder_step(shim_step *s, int serial, dnnl_memory_t from, cmd from_md, dnnl_memory_t to, cmd to_md) {
    dnnl_primitive_desc_t pd;
    memset(s, 0, sizeof *s);
    if (dnnl_reorder_primitive_desc_create(&pd, from_md, g_eng, to_md, g_eng, NULL) != dnnl_success)
        return -1;
    dnnl_status_t st = dnnl_primitive_create(&s->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) return -1;
    set_arg(s, DNNL_ARG_FROM, from);
    set_arg(s, DNNL_ARG_TO, to);
    s->serial = serial;
    return 0;
}

// bind_in returns the memory the main primitive reads for caller slot s: the
// caller's buffer itself when the layouts agree, otherwise an internal buffer
// filled by a reorder step that runs before the main primitive.
static dnnl_memory_t bind_in(shim_plan *p, int s, cmd user_md, cmd prim_md) {
    dnnl_memory_t u = user_mem(p, s, user_md);
    if (!u) return NULL;
    if (dnnl_memory_desc_equal(user_md, prim_md)) return u;
    dnnl_memory_t m = own_mem(p, prim_md);
    if (!m || p->nsteps == MAXSTEP) return NULL;
    if (reorder_step(&p->st[p->nsteps], p->serial, u, user_md, m, prim_md)) return NULL;
    p->nsteps++;
    return m;
}

// bind_out is bind_in for outputs: the reorder runs after the main primitive.
static dnnl_memory_t bind_out(shim_plan *p, int s, cmd user_md, cmd prim_md) {
    dnnl_memory_t u = user_mem(p, s, user_md);
    if (!u) return NULL;
    if (dnnl_memory_desc_equal(user_md, prim_md)) return u;
    dnnl_memory_t m = own_mem(p, prim_md);
    if (!m || p->npost == MAXSTEP) return NULL;
    if (reorder_step(&p->post[p->npost], p->serial, m, prim_md, u, user_md)) return NULL;
    p->npost++;
    return m;
}

// add_main creates the main primitive from pd as the next step, with a
// scratchpad memory if it needs one; the step's args are filled by the caller.
static shim_step *add_main(shim_plan *p, dnnl_primitive_desc_t pd) {
    if (p->nsteps == MAXSTEP) return NULL;
    shim_step *s = &p->st[p->nsteps];
    memset(s, 0, sizeof *s);
    if (dnnl_primitive_create(&s->prim, pd) != dnnl_success) return NULL;
    s->serial = p->serial;
    p->main = p->nsteps++;
    const char *info = "";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &info);
    snprintf(p->impl, sizeof p->impl, "%s", info);
    cmd sp = pd_md(pd, dnnl_query_scratchpad_md, 0);
    size_t n = sp ? dnnl_memory_desc_get_size(sp) : 0;
    if (n > 0) {
        if (dnnl_memory_create(&s->scratch, sp, g_eng, DNNL_MEMORY_NONE) != dnnl_success) return NULL;
        if (n > g_scratch_size) {
            // Grows at plan creation only; runs reuse it.
            free(g_scratch);
            g_scratch = aligned_alloc(64, (n + 63) / 64 * 64);
            g_scratch_size = g_scratch ? n : 0;
            if (!g_scratch) return NULL;
        }
        set_arg(s, DNNL_ARG_SCRATCHPAD, s->scratch);
    }
    return s;
}

static int finish(shim_plan *p) {
    for (int i = 0; i < p->npost; i++) {
        if (p->nsteps == MAXSTEP) return -1;
        p->st[p->nsteps++] = p->post[i];
        p->post[i].prim = NULL;
    }
    p->npost = 0;
    return 0;
}

// bind_own points the plan's internal buffers into the shared arena.
static int bind_own(shim_plan *p) {
    for (int i = 0; i < p->nown; i++)
        if (dnnl_memory_set_data_handle(p->own[i], (char *)g_arena + p->own_off[i]) != dnnl_success)
            return -1;
    return 0;
}

// shim_exec binds the caller's buffers and runs the plan; one cgo call per
// kernel.
// wino_run runs a Winograd plan. With ONEDNN_VERBOSE set it prints an exec
// line in oneDNN's format, so profiles made from that output include it.
static int wino_run(shim_plan *p) {
    static int verbose = -1;
    if (verbose < 0) {
        const char *v = getenv("ONEDNN_VERBOSE");
        if (!v) v = getenv("DNNL_VERBOSE");
        verbose = v && atoi(v) > 0;
    }
    struct timespec a, b;
    if (verbose) clock_gettime(CLOCK_MONOTONIC, &a);
    use_threads(g_nthr);
    int r;
    switch (p->wk - 1) {
    case 0: r = wino_conv(0, p->wd, p->wh[0], p->wh[1], p->wh[2]); break;
    case 1: r = wino_conv(1, p->wd, p->wh[0], p->wh[1], p->wh[2]); break;
    default: r = wino_bwd_w(p->wd, p->wh[0], p->wh[1], p->wh[2]); break;
    }
    if (verbose) {
        static const char *prop[3] = {"forward_training", "backward_data", "backward_weights"};
        clock_gettime(CLOCK_MONOTONIC, &b);
        const int64_t *d = p->wd;
        printf("onednn_verbose,exec,cpu,convolution,%s,%s,,,alg:convolution_winograd,"
               "mb%ld_ic%ldoc%ld_ih%ldoh%ldkh%ldsh%ldph%ld_iw%ldow%ldkw%ldsw%ldpw%ld,%g\n",
                p->impl, prop[p->wk - 1], (long)d[0], (long)d[1], (long)d[4], (long)d[2],
                (long)d[7], (long)d[5], (long)d[9], (long)d[11], (long)d[3], (long)d[8],
                (long)d[6], (long)d[10], (long)d[12],
                1e3 * ((double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec)));
        fflush(stdout);
    }
    return r;
}

static int shim_exec(shim_plan *p, void *h0, void *h1, void *h2, void *h3, void *h4, void *h5,
        void *h6, void *h7, void *h8, void *h9) {
    void *h[NSLOT] = {h0, h1, h2, h3, h4, h5, h6, h7, h8, h9};
    note_thread();
    if (p->wk) {
        // Slots as for shim_conv: forward x w b y; backward data dy w dx;
        // backward weights x dy dw db.
        p->wh[0] = h0;
        p->wh[1] = h1;
        p->wh[2] = p->wk == 1 ? h3 : h2;
        return wino_run(p);
    }
    for (int i = 0; i < NSLOT; i++)
        if (p->user[i] && dnnl_memory_set_data_handle(p->user[i], h[i]) != dnnl_success) return -1;
    if (bind_own(p)) return -3;
    for (int i = 0; i < p->nsteps; i++) {
        shim_step *s = &p->st[i];
        if (s->scratch && dnnl_memory_set_data_handle(s->scratch, g_scratch) != dnnl_success)
            return -2;
        use_threads(s->serial ? 1 : g_nthr);
        dnnl_status_t r = dnnl_primitive_execute(s->prim, g_stream, s->nargs, s->args);
        if (r != dnnl_success) return -100 - (int)r;
    }
    return dnnl_stream_wait(g_stream) == dnnl_success ? 0 : -4;
}

// shim_run_main runs only the main primitive iters times on the buffers bound
// by the last shim_exec and returns the seconds taken: the raw oneDNN cost
// that benchmarks compare the Go layer against.
static double shim_run_main(shim_plan *p, int iters) {
    struct timespec a, b;
    if (p->wk) {
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (int i = 0; i < iters; i++) wino_run(p);
        clock_gettime(CLOCK_MONOTONIC, &b);
        return (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    }
    shim_step *s = &p->st[p->main];
    // Plans created since the last run may have moved the shared buffers.
    bind_own(p);
    if (s->scratch) dnnl_memory_set_data_handle(s->scratch, g_scratch);
    use_threads(s->serial ? 1 : g_nthr);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < iters; i++) {
        dnnl_primitive_execute(s->prim, g_stream, s->nargs, s->args);
        dnnl_stream_wait(g_stream);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
}

static const char *shim_impl(shim_plan *p) { return p->impl; }
static size_t shim_ws_size(shim_plan *p) { return p->ws_size; }
static int shim_nsteps(shim_plan *p) { return p->nsteps; }

static shim_plan *plan_new(void) { return (shim_plan *)calloc(1, sizeof(shim_plan)); }

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, 256, __VA_ARGS__);                                                           \
        goto fail;                                                                                 \
    } while (0)

// shim_conv builds a convolution plan. kind: 0 forward, 1 backward data,
// 2 backward weights. d: N C H W O KH KW OH OW SH SW PH PW. xl, yl: layouts
// of the x-side (x or dx) and y-side (y or dy) tensors. Slots: forward x w b
// y; backward data dy w dx; backward weights x dy dw db.
static shim_plan *shim_conv(int kind, int wino, const int64_t *d, int xl, int yl, int bias,
        char *err) {
    shim_plan *p = plan_new();
    use_threads(g_nthr); // kernels block their work for the pool they are created on
    dnnl_primitive_desc_t pd = NULL, hint = NULL;
    dnnl_primitive_attr_t attr = NULL;
    cmd xu = NULL, yu = NULL, wu = NULL, bu = NULL, xa = NULL, ya = NULL, wa = NULL;
    dnnl_dim_t xd[4] = {d[0], d[1], d[2], d[3]}, yd[4] = {d[0], d[4], d[7], d[8]};
    dnnl_dim_t wd[4] = {d[4], d[1], d[5], d[6]}, bd[1] = {d[4]};
    dnnl_dim_t st[2] = {d[9], d[10]}, pl[2] = {d[11], d[12]};
    dnnl_dim_t pr[2] = {(d[7] - 1) * d[9] + d[5] - d[2] - d[11],
            (d[8] - 1) * d[10] + d[6] - d[3] - d[12]};
    dnnl_alg_kind_t alg = wino ? dnnl_convolution_winograd : dnnl_convolution_direct;
    if (!p) FAIL("out of memory");
    xu = md_lay(4, xd, xl);
    yu = md_lay(4, yd, yl);
    wu = md_new(4, wd, dnnl_abcd);
    bu = md_new(1, bd, dnnl_a);
    xa = md_new(4, xd, dnnl_format_tag_any);
    ya = md_new(4, yd, dnnl_format_tag_any);
    wa = md_new(4, wd, dnnl_format_tag_any);
    if (!xu || !yu || !wu || !bu || !xa || !ya || !wa) FAIL("bad dims or layout");
    if (user_attr(&attr)) FAIL("attr");
    // First ask for the caller's layouts (no activation reorders); if only
    // the reference implementation takes them, let oneDNN choose.
    for (int attempt = 0; attempt < 2; attempt++) {
        cmd xs = attempt == 0 ? xu : xa, ys = attempt == 0 ? yu : ya;
        cmd bb = bias ? bu : NULL;
        if (hint) dnnl_primitive_desc_destroy(hint);
        if (pd) dnnl_primitive_desc_destroy(pd);
        hint = pd = NULL;
        dnnl_status_t s;
        if (kind == 0) {
            s = pd_conv_fwd(&pd, g_eng, alg, xs, wa, bb, ys, st, pl, pr, attr);
        } else {
            s = pd_conv_fwd(&hint, g_eng, alg, xs, wa, bb, ys, st, pl, pr, NULL);
            if (s == dnnl_success && kind == 1)
                s = pd_conv_bwd_data(&pd, g_eng, alg, xs, wa, ys, st, pl, pr, hint, attr);
            else if (s == dnnl_success)
                s = pd_conv_bwd_w(&pd, g_eng, alg, xs, wa, bb, ys, st, pl, pr, hint, attr);
        }
        if (s != dnnl_success) {
            pd = NULL;
            if (attempt == 1) FAIL("no %s convolution for this shape (status %d)",
                    wino ? "winograd" : "direct", (int)s);
            continue;
        }
        const char *info = "";
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &info);
        if (strncmp(info, "ref", 3) != 0 || attempt == 1) break;
    }
    if (kind == 0) {
        dnnl_memory_t x = bind_in(p, 0, xu, pd_md(pd, dnnl_query_src_md, 0));
        dnnl_memory_t w = bind_in(p, 1, wu, pd_md(pd, dnnl_query_weights_md, 0));
        dnnl_memory_t b = bias ? bind_in(p, 2, bu, pd_md(pd, dnnl_query_weights_md, 1)) : NULL;
        dnnl_memory_t y = bind_out(p, 3, yu, pd_md(pd, dnnl_query_dst_md, 0));
        if (!x || !w || !y || (bias && !b)) FAIL("memory binding failed");
        shim_step *s = add_main(p, pd);
        if (!s) FAIL("primitive creation failed");
        set_arg(s, DNNL_ARG_SRC, x);
        set_arg(s, DNNL_ARG_WEIGHTS, w);
        if (bias) set_arg(s, DNNL_ARG_BIAS, b);
        set_arg(s, DNNL_ARG_DST, y);
    } else if (kind == 1) {
        dnnl_memory_t dy = bind_in(p, 0, yu, pd_md(pd, dnnl_query_diff_dst_md, 0));
        dnnl_memory_t w = bind_in(p, 1, wu, pd_md(pd, dnnl_query_weights_md, 0));
        dnnl_memory_t dx = bind_out(p, 2, xu, pd_md(pd, dnnl_query_diff_src_md, 0));
        if (!dy || !w || !dx) FAIL("memory binding failed");
        shim_step *s = add_main(p, pd);
        if (!s) FAIL("primitive creation failed");
        set_arg(s, DNNL_ARG_DIFF_DST, dy);
        set_arg(s, DNNL_ARG_WEIGHTS, w);
        set_arg(s, DNNL_ARG_DIFF_SRC, dx);
    } else {
        dnnl_memory_t x = bind_in(p, 0, xu, pd_md(pd, dnnl_query_src_md, 0));
        dnnl_memory_t dy = bind_in(p, 1, yu, pd_md(pd, dnnl_query_diff_dst_md, 0));
        dnnl_memory_t dw = bind_out(p, 2, wu, pd_md(pd, dnnl_query_diff_weights_md, 0));
        dnnl_memory_t db = bias ? bind_out(p, 3, bu, pd_md(pd, dnnl_query_diff_weights_md, 1)) : NULL;
        if (!x || !dy || !dw || (bias && !db)) FAIL("memory binding failed");
        shim_step *s = add_main(p, pd);
        if (!s) FAIL("primitive creation failed");
        set_arg(s, DNNL_ARG_SRC, x);
        set_arg(s, DNNL_ARG_DIFF_DST, dy);
        set_arg(s, DNNL_ARG_DIFF_WEIGHTS, dw);
        if (bias) set_arg(s, DNNL_ARG_DIFF_BIAS, db);
    }
    if (finish(p)) FAIL("too many steps");
    goto done;
fail:
    plan_free(p);
    p = NULL;
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (hint) dnnl_primitive_desc_destroy(hint);
    if (attr) dnnl_primitive_attr_destroy(attr);
    md_free(xu); md_free(yu); md_free(wu); md_free(bu); md_free(xa); md_free(ya); md_free(wa);
    return p;
}

// shim_conv_wino23 builds a Winograd F(2x2,3x3) plan (wino.h), or fails if
// the shape, layouts or CPU do not allow one.
static shim_plan *shim_conv_wino23(int kind, const int64_t *d, int xl, int yl, int bias, char *err) {
    if (!wino_ok(d, xl, yl, bias)) {
        snprintf(err, 256, "no F(2x2,3x3) Winograd for this shape, layout or CPU");
        return NULL;
    }
    shim_plan *p = plan_new();
    if (!p) {
        snprintf(err, 256, "out of memory");
        return NULL;
    }
    p->wk = kind + 1;
    memcpy(p->wd, d, sizeof p->wd);
    snprintf(p->impl, sizeof p->impl, "simclr:wino_f2x3");
    return p;
}

static int64_t shim_wino_tune_batch(const int64_t *d) {
    use_threads(g_nthr);
    return wino_tune_batch(d);
}

// shim_bn builds a batch-norm plan on dims (nd 2 or 4) in layout lay.
// kind 0: training forward; 1: inference forward; 2: backward (fused ReLU
// reads the forward workspace); 3: backward with the ReLU mask taken from y
// (when the workspace is gone). dyl: layout of dy (kinds 2, 3). global:
// backward of an inference-mode forward (statistics are constants).
// Slots forward: x gamma beta mean var y ws; backward: x dy y gamma mean var
// ws dx dgamma dbeta.
static shim_plan *shim_bn(int kind, int nd, const int64_t *dims, int lay, int dyl, float eps,
        int relu, int global, int serial, char *err) {
    shim_plan *p = plan_new();
    if (p) p->serial = memop_serial(serial);
    // Created on the pool it runs on: scratchpads are sized for it.
    use_threads(p && p->serial ? 1 : g_nthr);
    dnnl_primitive_desc_t pd = NULL, hint = NULL, epd = NULL, ehint = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_dim_t dd[4], cd[1] = {dims[1]};
    for (int i = 0; i < nd; i++) dd[i] = dims[i];
    cmd data = md_lay(nd, dd, lay), dyu = md_lay(nd, dd, dyl), cvec = md_new(1, cd, dnnl_a);
    unsigned flags = dnnl_use_scale | dnnl_use_shift;
    if (!p) FAIL("out of memory");
    if (!data || !dyu || !cvec) FAIL("bad dims or layout");
    if (user_attr(&attr)) FAIL("attr");
    if (kind == 1 || global) flags |= dnnl_use_global_stats;
    if (relu && kind != 3) flags |= dnnl_fuse_norm_relu;
    if (kind <= 1) {
        dnnl_prop_kind_t prop = kind == 0 ? dnnl_forward_training : dnnl_forward_inference;
        if (pd_bn_fwd(&pd, g_eng, prop, data, eps, flags, attr) != dnnl_success)
            FAIL("batch norm forward not supported");
        dnnl_memory_t x = bind_in(p, 0, data, pd_md(pd, dnnl_query_src_md, 0));
        dnnl_memory_t g = user_mem(p, 1, cvec), b = user_mem(p, 2, cvec);
        dnnl_memory_t m = user_mem(p, 3, cvec), v = user_mem(p, 4, cvec);
        dnnl_memory_t y = bind_out(p, 5, data, pd_md(pd, dnnl_query_dst_md, 0));
        dnnl_memory_t ws = NULL;
        cmd wsmd = pd_md(pd, dnnl_query_workspace_md, 0);
        if (wsmd && dnnl_memory_desc_get_size(wsmd) > 0) {
            ws = user_mem(p, 6, wsmd);
            p->ws_size = dnnl_memory_desc_get_size(wsmd);
        }
        if (!x || !g || !b || !m || !v || !y) FAIL("memory binding failed");
        shim_step *s = add_main(p, pd);
        if (!s) FAIL("primitive creation failed");
        set_arg(s, DNNL_ARG_SRC, x);
        set_arg(s, DNNL_ARG_SCALE, g);
        set_arg(s, DNNL_ARG_SHIFT, b);
        set_arg(s, DNNL_ARG_MEAN, m);
        set_arg(s, DNNL_ARG_VARIANCE, v);
        set_arg(s, DNNL_ARG_DST, y);
        if (ws) set_arg(s, DNNL_ARG_WORKSPACE, ws);
    } else {
        if (pd_bn_fwd(&hint, g_eng, dnnl_forward_training, data, eps, flags, NULL) != dnnl_success)
            FAIL("batch norm forward not supported");
        if (pd_bn_bwd(&pd, g_eng, data, data, eps, flags, hint, attr) != dnnl_success)
            FAIL("batch norm backward not supported");
        dnnl_memory_t x = bind_in(p, 0, data, pd_md(pd, dnnl_query_src_md, 0));
        dnnl_memory_t dy = bind_in(p, 1, dyu, data);
        if (!x || !dy) FAIL("memory binding failed");
        if (kind == 3 && relu) {
            // dy *= (y > 0) into an internal buffer, then plain BN backward.
            if (pd_eltwise_fwd(&ehint, g_eng, dnnl_eltwise_relu_use_dst_for_bwd, data, NULL))
                FAIL("relu not supported");
            if (pd_eltwise_bwd(&epd, g_eng, dnnl_eltwise_relu_use_dst_for_bwd, data, data, ehint,
                        NULL))
                FAIL("relu backward not supported");
            dnnl_memory_t y = user_mem(p, 2, data), t = own_mem(p, data);
            if (!y || !t || p->nsteps == MAXSTEP) FAIL("memory binding failed");
            shim_step *e = &p->st[p->nsteps];
            memset(e, 0, sizeof *e);
            if (dnnl_primitive_create(&e->prim, epd) != dnnl_success) FAIL("relu primitive");
            e->serial = p->serial;
            p->nsteps++;
            set_arg(e, DNNL_ARG_DST, y);
            set_arg(e, DNNL_ARG_DIFF_DST, dy);
            set_arg(e, DNNL_ARG_DIFF_SRC, t);
            dy = t;
        }
        dnnl_memory_t g = user_mem(p, 3, cvec), m = user_mem(p, 4, cvec);
        dnnl_memory_t v = user_mem(p, 5, cvec);
        dnnl_memory_t ws = NULL;
        cmd wsmd = pd_md(pd, dnnl_query_workspace_md, 0);
        if (wsmd && dnnl_memory_desc_get_size(wsmd) > 0) {
            ws = user_mem(p, 6, wsmd);
            p->ws_size = dnnl_memory_desc_get_size(wsmd);
        }
        dnnl_memory_t dx = bind_out(p, 7, data, pd_md(pd, dnnl_query_diff_src_md, 0));
        dnnl_memory_t dg = user_mem(p, 8, cvec), db = user_mem(p, 9, cvec);
        if (!g || !m || !v || !dx || !dg || !db) FAIL("memory binding failed");
        shim_step *s = add_main(p, pd);
        if (!s) FAIL("primitive creation failed");
        set_arg(s, DNNL_ARG_SRC, x);
        set_arg(s, DNNL_ARG_DIFF_DST, dy);
        set_arg(s, DNNL_ARG_SCALE, g);
        // oneDNN 2.x validates that the shift is given to backward with
        // dnnl_use_shift although it does not read it: pass a dummy.
        dnnl_memory_t sh = own_mem(p, cvec);
        if (!sh) FAIL("memory binding failed");
        set_arg(s, DNNL_ARG_SHIFT, sh);
        set_arg(s, DNNL_ARG_MEAN, m);
        set_arg(s, DNNL_ARG_VARIANCE, v);
        if (ws) set_arg(s, DNNL_ARG_WORKSPACE, ws);
        set_arg(s, DNNL_ARG_DIFF_SRC, dx);
        set_arg(s, DNNL_ARG_DIFF_SCALE, dg);
        set_arg(s, DNNL_ARG_DIFF_SHIFT, db);
    }
    if (finish(p)) FAIL("too many steps");
    goto done;
fail:
    plan_free(p);
    p = NULL;
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (hint) dnnl_primitive_desc_destroy(hint);
    if (epd) dnnl_primitive_desc_destroy(epd);
    if (ehint) dnnl_primitive_desc_destroy(ehint);
    if (attr) dnnl_primitive_attr_destroy(attr);
    md_free(data); md_free(dyu); md_free(cvec);
    use_threads(g_nthr);
    return p;
}

// shim_eltwise builds elementwise plans on dims (nd dims). kind 0: ReLU
// forward (slots x y); 1: ReLU backward from y (slots dy y dx; dy in layout
// l2); 2: add (slots a b y; b in layout l2), relu adds a ReLU post-op;
// 3: reorder (slots src dst; dst in layout l2).
static shim_plan *shim_eltwise(int kind, int nd, const int64_t *dims, int lay, int l2, int relu,
        char *err) {
    shim_plan *p = plan_new();
    if (p) p->serial = memop_serial(0);
    // Created on the pool it runs on: scratchpads are sized for it.
    use_threads(p && p->serial ? 1 : g_nthr);
    dnnl_primitive_desc_t pd = NULL, hint = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_dim_t dd[5];
    for (int i = 0; i < nd && i < 5; i++) dd[i] = dims[i];
    cmd data = md_lay(nd, dd, lay), other = md_lay(nd, dd, l2);
    if (!p) FAIL("out of memory");
    if (!data || !other) FAIL("bad dims or layout");
    if (user_attr(&attr)) FAIL("attr");
    if (kind == 0) {
        if (pd_eltwise_fwd(&pd, g_eng, dnnl_eltwise_relu, data, attr)) FAIL("relu not supported");
        dnnl_memory_t x = user_mem(p, 0, data), y = user_mem(p, 1, data);
        shim_step *s = x && y ? add_main(p, pd) : NULL;
        if (!s) FAIL("primitive creation failed");
        set_arg(s, DNNL_ARG_SRC, x);
        set_arg(s, DNNL_ARG_DST, y);
    } else if (kind == 1) {
        if (pd_eltwise_fwd(&hint, g_eng, dnnl_eltwise_relu_use_dst_for_bwd, data, NULL))
            FAIL("relu not supported");
        if (pd_eltwise_bwd(&pd, g_eng, dnnl_eltwise_relu_use_dst_for_bwd, data, data, hint, attr))
            FAIL("relu backward not supported");
        dnnl_memory_t dy = bind_in(p, 0, other, data);
        dnnl_memory_t y = user_mem(p, 1, data), dx = user_mem(p, 2, data);
        shim_step *s = dy && y && dx ? add_main(p, pd) : NULL;
        if (!s) FAIL("primitive creation failed");
        set_arg(s, DNNL_ARG_DST, y);
        set_arg(s, DNNL_ARG_DIFF_DST, dy);
        set_arg(s, DNNL_ARG_DIFF_SRC, dx);
    } else if (kind == 2) {
        if (relu) {
            if (dnnl_post_ops_create(&po) || post_ops_relu(po)
                    || dnnl_primitive_attr_set_post_ops(attr, po))
                FAIL("post-ops");
        }
        if (pd_binary(&pd, g_eng, dnnl_binary_add, data, data, data, attr)) FAIL("add not supported");
        dnnl_memory_t a = user_mem(p, 0, data), b = bind_in(p, 1, other, data);
        dnnl_memory_t y = user_mem(p, 2, data);
        shim_step *s = a && b && y ? add_main(p, pd) : NULL;
        if (!s) FAIL("primitive creation failed");
        set_arg(s, DNNL_ARG_SRC_0, a);
        set_arg(s, DNNL_ARG_SRC_1, b);
        set_arg(s, DNNL_ARG_DST, y);
    } else {
        dnnl_memory_t a = user_mem(p, 0, data), b = user_mem(p, 1, other);
        if (!a || !b || reorder_step(&p->st[0], p->serial, a, data, b, other)) FAIL("reorder not supported");
        p->nsteps = 1;
        snprintf(p->impl, sizeof p->impl, "reorder");
    }
    if (finish(p)) FAIL("too many steps");
    goto done;
fail:
    plan_free(p);
    p = NULL;
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (hint) dnnl_primitive_desc_destroy(hint);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    md_free(data); md_free(other);
    use_threads(g_nthr);
    return p;
}

// shim_pool builds pooling plans. d: N C H W OH OW KH KW SH SW PH PW.
// kind 0: max forward (slots x y ws); 1: max backward (slots dy ws dx; dy in
// layout l2); 2: average forward (slots x y); 3: average backward (slots dy
// dx). x/dx are in layout lay, y in layout lay too.
static shim_plan *shim_pool(int kind, const int64_t *d, int lay, int l2, char *err) {
    shim_plan *p = plan_new();
    if (p) p->serial = memop_serial(0);
    // Created on the pool it runs on: scratchpads are sized for it.
    use_threads(p && p->serial ? 1 : g_nthr);
    dnnl_primitive_desc_t pd = NULL, hint = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_dim_t xd[4] = {d[0], d[1], d[2], d[3]}, yd[4] = {d[0], d[1], d[4], d[5]};
    dnnl_dim_t k[2] = {d[6], d[7]}, st[2] = {d[8], d[9]}, pl[2] = {d[10], d[11]};
    dnnl_dim_t pr[2] = {(d[4] - 1) * d[8] + d[6] - d[2] - d[10],
            (d[5] - 1) * d[9] + d[7] - d[3] - d[11]};
    dnnl_alg_kind_t alg = kind < 2 ? dnnl_pooling_max : dnnl_pooling_avg_exclude_padding;
    cmd xm = md_lay(4, xd, lay), ym = md_lay(4, yd, lay), yu = md_lay(4, yd, l2);
    if (!p) FAIL("out of memory");
    if (!xm || !ym || !yu) FAIL("bad dims or layout");
    if (user_attr(&attr)) FAIL("attr");
    if (kind == 0 || kind == 2) {
        dnnl_prop_kind_t prop = kind == 0 ? dnnl_forward_training : dnnl_forward_inference;
        if (pd_pool_fwd(&pd, g_eng, prop, alg, xm, ym, st, k, pl, pr, attr))
            FAIL("pooling not supported");
        dnnl_memory_t x = user_mem(p, 0, xm), y = user_mem(p, 1, ym), ws = NULL;
        cmd wsmd = pd_md(pd, dnnl_query_workspace_md, 0);
        if (kind == 0 && wsmd && dnnl_memory_desc_get_size(wsmd) > 0) {
            ws = user_mem(p, 2, wsmd);
            p->ws_size = dnnl_memory_desc_get_size(wsmd);
        }
        shim_step *s = x && y ? add_main(p, pd) : NULL;
        if (!s) FAIL("primitive creation failed");
        set_arg(s, DNNL_ARG_SRC, x);
        set_arg(s, DNNL_ARG_DST, y);
        if (ws) set_arg(s, DNNL_ARG_WORKSPACE, ws);
    } else {
        dnnl_prop_kind_t prop = dnnl_forward_training;
        if (pd_pool_fwd(&hint, g_eng, prop, alg, xm, ym, st, k, pl, pr, NULL))
            FAIL("pooling not supported");
        if (pd_pool_bwd(&pd, g_eng, alg, xm, ym, st, k, pl, pr, hint, attr))
            FAIL("pooling backward not supported");
        dnnl_memory_t dy = bind_in(p, 0, yu, ym), ws = NULL;
        cmd wsmd = pd_md(pd, dnnl_query_workspace_md, 0);
        if (kind == 1 && wsmd && dnnl_memory_desc_get_size(wsmd) > 0) {
            ws = user_mem(p, 1, wsmd);
            p->ws_size = dnnl_memory_desc_get_size(wsmd);
        }
        dnnl_memory_t dx = user_mem(p, 2, xm);
        shim_step *s = dy && dx ? add_main(p, pd) : NULL;
        if (!s) FAIL("primitive creation failed");
        set_arg(s, DNNL_ARG_DIFF_DST, dy);
        set_arg(s, DNNL_ARG_DIFF_SRC, dx);
        if (ws) set_arg(s, DNNL_ARG_WORKSPACE, ws);
    }
    if (finish(p)) FAIL("too many steps");
    goto done;
fail:
    plan_free(p);
    p = NULL;
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (hint) dnnl_primitive_desc_destroy(hint);
    if (attr) dnnl_primitive_attr_destroy(attr);
    md_free(xm); md_free(ym); md_free(yu);
    use_threads(g_nthr);
    return p;
}

// shim_sgemm is row-major C = alpha*op(A)*op(B) + beta*C.
static int shim_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
        int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    note_thread();
    use_threads(g_nthr);
    return dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            == dnnl_success ? 0 : -1;
}

// shim_block_size reports the channel block oneDNN's convolutions prefer on
// this CPU (16, 8) or 0 if they prefer a plain layout.
static int shim_block_size(void) {
    char err[256];
    int64_t d[13] = {2, 64, 8, 8, 64, 3, 3, 8, 8, 1, 1, 1, 1};
    int res = 0;
    dnnl_dim_t dims[4] = {2, 64, 8, 8}, wd[4] = {64, 64, 3, 3};
    dnnl_dim_t st[2] = {1, 1}, pad[2] = {1, 1};
    (void)err; (void)d;
    cmd a = md_new(4, dims, dnnl_format_tag_any), w = md_new(4, wd, dnnl_format_tag_any);
    cmd b16 = md_new(4, dims, dnnl_aBcd16b), b8 = md_new(4, dims, dnnl_aBcd8b);
    dnnl_primitive_desc_t pd = NULL;
    if (a && w && b16 && b8
            && pd_conv_fwd(&pd, g_eng, dnnl_convolution_direct, a, w, NULL, a, st, pad, pad, NULL)
                    == dnnl_success) {
        cmd dst = pd_md(pd, dnnl_query_dst_md, 0);
        if (dnnl_memory_desc_equal(dst, b16)) res = 16;
        else if (dnnl_memory_desc_equal(dst, b8)) res = 8;
        dnnl_primitive_desc_destroy(pd);
    }
    md_free(a); md_free(w); md_free(b16); md_free(b8);
    return res;
}
