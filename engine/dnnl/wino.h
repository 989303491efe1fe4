// wino.h: Winograd F(2x2,3x3) convolutions (3x3, stride 1, pad 1, even
// sides) on nChw8c activations, for CPUs where oneDNN 2.x has no Winograd
// kernel (AVX2). Included by shim.h only.
//
// Each direction is tiles -> 16 independent matrix products -> tiles:
//   forward        y  = A^T [ (G g G^T) . (B^T d B) ] A     per 2x2 output tile
//   backward data  the forward on dy with g rotated 180 degrees and its
//                  channel axes swapped
//   backward wts   dW = G^T [ sum over tiles (A dY A^T) . (B^T d B) ] G
// (the last follows from the first by differentiating sum(dy * y) in g).
// The products run through dnnl_sgemm, which on AVX2 reaches 120-145
// GFLOP/s on 2 cores where the direct kernels reach 60-110; the transforms
// are memory-bound loops over 8-channel vectors. Tiles are processed in
// chunks so the transformed buffers stay a few MB whatever the batch.

typedef float v8 __attribute__((vector_size(32), aligned(4)));

#define WINO_TARGET __attribute__((target("avx2,fma")))

// Scratch buffers, grown on demand (one kernel runs at a time).
static float *g_wv, *g_wm, *g_wu;
static size_t g_wv_n, g_wm_n, g_wu_n;

static float *wino_buf(float **b, size_t *have, size_t n) {
    if (*have < n) {
        free(*b);
        *b = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
        *have = *b ? n : 0;
    }
    return *b;
}

static int wino_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// Tiles per chunk: V and M hold 16 x tiles x channels floats each.
static int64_t wino_chunk(int64_t T, int64_t ch) {
    int64_t t = (1 << 21) / (16 * ch); // 8 MB per buffer
    if (t < 64) t = 64;
    return t < T ? t : T;
}

// wino_tile gives the image n and the top-left output pixel (h0, w0) of
// tile t (tiles are 2x2 output pixels, image by image, row by row).
static inline void wino_tile(int64_t t, int64_t H, int64_t W, int64_t *n, int64_t *h0, int64_t *w0) {
    const int64_t TW = W / 2, per = (H / 2) * TW, r = t % per;
    *n = t / per;
    *h0 = 2 * (r / TW);
    *w0 = 2 * (r % TW);
}

// wino_in: V[(xi*tc + tl)*C + c] = (B^T d B)[xi] of the 4x4 input tile of
// global tile t0+tl, channel c. x is [N][C/8][H][W][8].
WINO_TARGET static void wino_in(const float *x, int64_t C, int64_t H, int64_t W, int64_t t0,
        int64_t tc, float *V) {
    const int64_t CB = C / 8;
#pragma omp parallel for schedule(static)
    for (int64_t tl = 0; tl < tc; tl++) {
        int64_t n, h0, w0; // the input tile starts one pixel up and left (pad 1)
        wino_tile(t0 + tl, H, W, &n, &h0, &w0);
        h0--, w0--;
        for (int64_t cb = 0; cb < CB; cb++) {
            const float *xp = x + (n * CB + cb) * H * W * 8;
            v8 d[4][4];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    int64_t h = h0 + i, w = w0 + j;
                    if (h >= 0 && h < H && w >= 0 && w < W)
                        d[i][j] = *(const v8 *)(xp + (h * W + w) * 8);
                    else
                        d[i][j] = (v8){0};
                }
            v8 u[4][4];
            for (int j = 0; j < 4; j++) { // B^T d
                u[0][j] = d[0][j] - d[2][j];
                u[1][j] = d[1][j] + d[2][j];
                u[2][j] = d[2][j] - d[1][j];
                u[3][j] = d[1][j] - d[3][j];
            }
            for (int i = 0; i < 4; i++) { // (B^T d) B
                v8 a = u[i][0] - u[i][2], b = u[i][1] + u[i][2];
                v8 c = u[i][2] - u[i][1], e = u[i][1] - u[i][3];
                float *vp = V + ((int64_t)(i * 4) * tc + tl) * C + cb * 8;
                *(v8 *)vp = a;
                *(v8 *)(vp + tc * C) = b;
                *(v8 *)(vp + 2 * tc * C) = c;
                *(v8 *)(vp + 3 * tc * C) = e;
            }
        }
    }
}

// wino_out: y tile = A^T m A from M[(xi*tc + tl)*O + o]. y is
// [N][O/8][H][W][8].
WINO_TARGET static void wino_out(const float *M, int64_t O, int64_t H, int64_t W, int64_t t0,
        int64_t tc, float *y) {
    const int64_t OB = O / 8;
#pragma omp parallel for schedule(static)
    for (int64_t tl = 0; tl < tc; tl++) {
        int64_t n, h0, w0;
        wino_tile(t0 + tl, H, W, &n, &h0, &w0);
        for (int64_t ob = 0; ob < OB; ob++) {
            v8 m[4][4];
            for (int xi = 0; xi < 16; xi++)
                m[xi / 4][xi % 4] = *(const v8 *)(M + ((int64_t)xi * tc + tl) * O + ob * 8);
            v8 s[2][4];
            for (int j = 0; j < 4; j++) { // A^T m
                s[0][j] = m[0][j] + m[1][j] + m[2][j];
                s[1][j] = m[1][j] - m[2][j] - m[3][j];
            }
            float *yp = y + (n * OB + ob) * H * W * 8;
            for (int i = 0; i < 2; i++) { // (A^T m) A
                *(v8 *)(yp + ((h0 + i) * W + w0) * 8) = s[i][0] + s[i][1] + s[i][2];
                *(v8 *)(yp + ((h0 + i) * W + w0 + 1) * 8) = s[i][1] - s[i][2] - s[i][3];
            }
        }
    }
}

// wino_dy: Z[(xi*tc + tl)*O + o] = (A e A^T)[xi] of the 2x2 tile e of dy.
WINO_TARGET static void wino_dy(const float *dy, int64_t O, int64_t H, int64_t W, int64_t t0,
        int64_t tc, float *Z) {
    const int64_t OB = O / 8;
#pragma omp parallel for schedule(static)
    for (int64_t tl = 0; tl < tc; tl++) {
        int64_t n, h0, w0;
        wino_tile(t0 + tl, H, W, &n, &h0, &w0);
        for (int64_t ob = 0; ob < OB; ob++) {
            const float *p = dy + (n * OB + ob) * H * W * 8;
            v8 e[2][2];
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) e[i][j] = *(const v8 *)(p + ((h0 + i) * W + w0 + j) * 8);
            v8 u[4][2];
            for (int j = 0; j < 2; j++) { // A e
                u[0][j] = e[0][j];
                u[1][j] = e[0][j] + e[1][j];
                u[2][j] = e[0][j] - e[1][j];
                u[3][j] = -e[1][j];
            }
            for (int i = 0; i < 4; i++) { // (A e) A^T
                v8 z[4] = {u[i][0], u[i][0] + u[i][1], u[i][0] - u[i][1], -u[i][1]};
                for (int j = 0; j < 4; j++)
                    *(v8 *)(Z + ((int64_t)(i * 4 + j) * tc + tl) * O + ob * 8) = z[j];
            }
        }
    }
}

// wino_u: U[xi][k][m] = (G g G^T)[xi] with g the 3x3 kernel w[o][c] for the
// forward (k = c, m = o) or, flipped, for backward data (k = o, m = c).
static void wino_u(const float *w, int64_t O, int64_t C, int flip, float *U) {
    const int64_t K = flip ? O : C, Mm = flip ? C : O;
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < O; o++) {
        for (int64_t c = 0; c < C; c++) {
            const float *g = w + (o * C + c) * 9;
            float f[3][3];
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++) f[i][j] = flip ? g[(2 - i) * 3 + 2 - j] : g[i * 3 + j];
            float u[4][3];
            for (int j = 0; j < 3; j++) { // G f
                u[0][j] = f[0][j];
                u[1][j] = 0.5f * (f[0][j] + f[1][j] + f[2][j]);
                u[2][j] = 0.5f * (f[0][j] - f[1][j] + f[2][j]);
                u[3][j] = f[2][j];
            }
            int64_t k = flip ? o : c, m = flip ? c : o;
            for (int i = 0; i < 4; i++) { // (G f) G^T
                float r[4] = {u[i][0], 0.5f * (u[i][0] + u[i][1] + u[i][2]),
                        0.5f * (u[i][0] - u[i][1] + u[i][2]), u[i][2]};
                for (int j = 0; j < 4; j++) U[((int64_t)(i * 4 + j) * K + k) * Mm + m] = r[j];
            }
        }
    }
}

// wino_dw: dw[o][c] (Plain 3x3) = G^T H G with H[xi] = Hs[xi][c][o].
static void wino_dw(const float *Hs, int64_t O, int64_t C, float *dw) {
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < O; o++) {
        for (int64_t c = 0; c < C; c++) {
            float h[4][4];
            for (int xi = 0; xi < 16; xi++) h[xi / 4][xi % 4] = Hs[((int64_t)xi * C + c) * O + o];
            float u[3][4];
            for (int j = 0; j < 4; j++) { // G^T h
                u[0][j] = h[0][j] + 0.5f * (h[1][j] + h[2][j]);
                u[1][j] = 0.5f * (h[1][j] - h[2][j]);
                u[2][j] = 0.5f * (h[1][j] + h[2][j]) + h[3][j];
            }
            float *g = dw + (o * C + c) * 9;
            for (int i = 0; i < 3; i++) { // (G^T h) G
                g[i * 3 + 0] = u[i][0] + 0.5f * (u[i][1] + u[i][2]);
                g[i * 3 + 1] = 0.5f * (u[i][1] - u[i][2]);
                g[i * 3 + 2] = 0.5f * (u[i][1] + u[i][2]) + u[i][3];
            }
        }
    }
}

static int wino_gemm(int ta, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
        const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    return dnnl_sgemm(ta ? 'T' : 'N', 'N', m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc)
            == dnnl_success ? 0 : -1;
}

// Small channel counts (8..64) make the products too thin for a threaded
// GEMM to beat memory: there each thread takes its own chunks of tiles,
// small enough to stay in its L2 cache from input transform through the
// products (sgemm runs single-threaded inside a parallel region; a
// hand-written 4-row kernel measured 20-35% slower) to output transform.
// Below 32 channels the transforms alone cost more than oneDNN's direct
// kernel, and the tuner keeps that. WINO_SMALL is the largest channel count handled that way.
enum { WINO_SMALL = 64, WINO_TILES = 256 };

static float *g_wt;
static size_t g_wt_n;

static int64_t wino_small_chunk(int64_t ch) {
    int64_t t = (1 << 15) / ch; // 128 KB per buffer
    return t < WINO_TILES ? t : WINO_TILES;
}

static int wino_conv_small(const int64_t *d, int64_t Ci, int64_t Co, const float *in,
        const float *U, float *out) {
    const int64_t H = d[2], W = d[3], T = d[0] * (H / 2) * (W / 2);
    const int64_t tc = wino_small_chunk(Ci > Co ? Ci : Co), nch = (T + tc - 1) / tc;
    const int nt = omp_get_max_threads();
    const int64_t per = 16 * tc * (Ci + Co);
    float *buf = wino_buf(&g_wt, &g_wt_n, per * nt);
    if (!buf) return -5;
    int bad = 0;
#pragma omp parallel num_threads(nt)
    {
        float *V = buf + per * omp_get_thread_num(), *M = V + 16 * tc * Ci;
#pragma omp for schedule(static)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t t0 = ch * tc, n = T - t0 < tc ? T - t0 : tc;
            wino_in(in, Ci, H, W, t0, n, V);
            for (int xi = 0; xi < 16; xi++)
                if (wino_gemm(0, n, Co, Ci, V + xi * n * Ci, Ci, U + xi * Ci * Co, Co, 0.0f,
                            M + xi * n * Co, Co))
                    bad = 1;
            wino_out(M, Co, H, W, t0, n, out);
        }
    }
    return bad ? -6 : 0;
}

static int wino_bwd_w_small(const int64_t *d, const float *x, const float *dy, float *Hs) {
    const int64_t C = d[1], H = d[2], W = d[3], O = d[4], T = d[0] * (H / 2) * (W / 2);
    const int64_t tc = wino_small_chunk(C > O ? C : O), nch = (T + tc - 1) / tc;
    const int nt = omp_get_max_threads();
    const int64_t per = 16 * tc * (C + O) + 16 * C * O;
    float *buf = wino_buf(&g_wt, &g_wt_n, per * nt);
    if (!buf) return -5;
    int bad = 0;
#pragma omp parallel num_threads(nt)
    {
        int id = omp_get_thread_num();
        float *V = buf + per * id, *Z = V + 16 * tc * C, *P = Z + 16 * tc * O;
        memset(P, 0, 16 * C * O * sizeof(float));
#pragma omp for schedule(static)
        for (int64_t ch = 0; ch < nch; ch++) {
            int64_t t0 = ch * tc, n = T - t0 < tc ? T - t0 : tc;
            wino_in(x, C, H, W, t0, n, V);
            wino_dy(dy, O, H, W, t0, n, Z);
            for (int xi = 0; xi < 16; xi++)
                if (wino_gemm(1, C, O, n, V + xi * n * C, C, Z + xi * n * O, O, 1.0f,
                            P + xi * C * O, O))
                    bad = 1;
        }
    }
    // Sum the per-thread partial products.
    const int64_t m = 16 * C * O;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m; i++) {
        float acc = 0;
        for (int id = 0; id < nt; id++) acc += buf[per * id + 16 * tc * (C + O) + i];
        Hs[i] = acc;
    }
    return bad ? -6 : 0;
}

// wino_conv runs the forward (kind 0: in x, w -> y) or backward data
// (kind 1: in dy, w -> dx) of a convolution with dims d (N C H W O ...).
static int wino_conv(int kind, const int64_t *d, const float *in, const float *w, float *out) {
    const int64_t N = d[0], H = d[2], W = d[3];
    const int64_t Ci = kind == 0 ? d[1] : d[4], Co = kind == 0 ? d[4] : d[1];
    const int64_t T = N * (H / 2) * (W / 2), tc = wino_chunk(T, Ci > Co ? Ci : Co);
    float *U = wino_buf(&g_wu, &g_wu_n, 16 * Ci * Co);
    if (!U) return -5;
    wino_u(w, d[4], d[1], kind == 1, U);
    if (Ci <= WINO_SMALL && Co <= WINO_SMALL) return wino_conv_small(d, Ci, Co, in, U, out);
    float *V = wino_buf(&g_wv, &g_wv_n, 16 * tc * Ci);
    float *M = wino_buf(&g_wm, &g_wm_n, 16 * tc * Co);
    if (!V || !M) return -5;
    for (int64_t t0 = 0; t0 < T; t0 += tc) {
        int64_t n = T - t0 < tc ? T - t0 : tc;
        wino_in(in, Ci, H, W, t0, n, V);
        for (int xi = 0; xi < 16; xi++)
            if (wino_gemm(0, n, Co, Ci, V + xi * n * Ci, Ci, U + xi * Ci * Co, Co, 0.0f,
                        M + xi * n * Co, Co))
                return -6;
        wino_out(M, Co, H, W, t0, n, out);
    }
    return 0;
}

// wino_bwd_w computes dw (Plain O x C x 3 x 3) from x and dy.
static int wino_bwd_w(const int64_t *d, const float *x, const float *dy, float *dw) {
    const int64_t N = d[0], C = d[1], H = d[2], W = d[3], O = d[4];
    const int64_t T = N * (H / 2) * (W / 2), tc = wino_chunk(T, C > O ? C : O);
    float *Hs = wino_buf(&g_wu, &g_wu_n, 16 * C * O);
    if (!Hs) return -5;
    if (C <= WINO_SMALL && O <= WINO_SMALL) {
        int r = wino_bwd_w_small(d, x, dy, Hs);
        if (r == 0) wino_dw(Hs, O, C, dw);
        return r;
    }
    float *V = wino_buf(&g_wv, &g_wv_n, 16 * tc * C);
    float *Z = wino_buf(&g_wm, &g_wm_n, 16 * tc * O);
    if (!Hs || !V || !Z) return -5;
    for (int64_t t0 = 0; t0 < T; t0 += tc) {
        int64_t n = T - t0 < tc ? T - t0 : tc;
        wino_in(x, C, H, W, t0, n, V);
        wino_dy(dy, O, H, W, t0, n, Z);
        for (int xi = 0; xi < 16; xi++)
            if (wino_gemm(1, C, O, n, V + xi * n * C, C, Z + xi * n * O, O, t0 == 0 ? 0.0f : 1.0f,
                        Hs + xi * C * O, O))
                return -6;
    }
    wino_dw(Hs, O, C, dw);
    return 0;
}

// wino_tune_batch is the smallest batch whose timing reflects the kernel at
// full batch: two full tile chunks per thread (small path) or in all.
static int64_t wino_tune_batch(const int64_t *d) {
    int64_t ch = d[1] > d[4] ? d[1] : d[4], tpi = (d[2] / 2) * (d[3] / 2), need;
    if (d[1] <= WINO_SMALL && d[4] <= WINO_SMALL)
        need = 2 * omp_get_max_threads() * wino_small_chunk(ch);
    else
        need = 2 * wino_chunk(INT64_MAX, ch);
    return (need + tpi - 1) / tpi;
}

// wino_ok says whether dims d (N C H W O KH KW OH OW SH SW PH PW) with
// layouts xl, yl can run here.
static int wino_ok(const int64_t *d, int xl, int yl, int bias) {
    return !bias && xl == 8 && yl == 8 && d[1] % 8 == 0 && d[4] % 8 == 0 && d[5] == 3 &&
            d[6] == 3 && d[9] == 1 && d[10] == 1 && d[11] == 1 && d[12] == 1 && d[2] % 2 == 0 &&
            d[3] % 2 == 0 && d[7] == d[2] && d[8] == d[3] && wino_supported();
}
