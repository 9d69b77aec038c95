/* The packed inference layer on a CPU for a few tokens: per-token absmax quantization of the activations
 * and the integer product with the weight codes, fused in one call (quant/kernels/native.py builds and
 * loads this file; quant/reference.py is the spec). Two weight formats: int8 codes (one byte a weight, any
 * width), and the "2bit" layout's bytes themselves (quant/pack.py: 4 codes a byte, c + 1 in bits 2j..2j+1
 * of byte b for column 4b + j), read without unpacking them to memory.
 *
 * Every step is the reference's, in its order, in IEEE fp32 (built with -ffp-contract=off, so no step is
 * fused into an FMA): g = max|x| clamped to eps, r = (1 / g) * q, levels = clamp(rint(x * r), -q, q),
 * sums = levels . codes in exact int32, out = ((float)sums * (g / q)) * w_scale + bias. The outputs equal
 * the reference's bit for bit. A token holding a NaN or an infinity gives a row of NaNs (the reference's
 * integer levels are undefined there).
 *
 * With AVX2 the dot products take 32 codes a step: maddubs multiplies |levels| (unsigned) by the codes
 * carrying the levels' signs; a pair of products is at most 2 * 127 * 127 = 32258, inside int16, so the
 * sums stay exact.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

typedef struct {
  const int8_t *codes;  /* (n, k) row-major int8 codes, or (n, ceil(k / 4)) "2bit" bytes when packed2 */
  const float *w_scale; /* 1 value, or n when per_row */
  const float *bias;    /* n values, or NULL */
  int64_t k, n;
  int32_t per_row, q;
  float eps;
  int32_t packed2;
} lh_layer;

#define ROWS 4 /* output rows per pass over a token's levels */

#if defined(__AVX2__)
static int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

/* s[r] = the sum of acc[r]'s lanes for `rows` accumulators: one hadd tree when there are ROWS of them. */
static void hsum_rows(const __m256i *acc, int rows, int32_t *s) {
  if (rows < ROWS) {
    for (int r = 0; r < rows; r++) s[r] = hsum(acc[r]);
    return;
  }
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(acc[0], acc[1]), _mm256_hadd_epi32(acc[2], acc[3]));
  _mm_storeu_si128((__m128i *)s, _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
}
#endif

/* s[r] = levels . codes[r] for the `rows` (<= ROWS) code rows starting at `codes`. */
static void dot_rows(const int8_t *levels, const int8_t *codes, int64_t k, int rows, int32_t *s) {
  int64_t j = 0;
  for (int r = 0; r < rows; r++) s[r] = 0;
#if defined(__AVX2__)
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[ROWS];
  for (int r = 0; r < rows; r++) acc[r] = _mm256_setzero_si256();
  for (; j + 32 <= k; j += 32) {
    __m256i a = _mm256_loadu_si256((const __m256i *)(levels + j));
    __m256i ua = _mm256_sign_epi8(a, a);
    for (int r = 0; r < rows; r++) {
      __m256i b = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(codes + r * k + j)), a);
      acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(_mm256_maddubs_epi16(ua, b), ones));
    }
  }
  hsum_rows(acc, rows, s);
#endif
  for (; j < k; j++)
    for (int r = 0; r < rows; r++) s[r] += (int32_t)levels[j] * (int32_t)codes[r * k + j];
}

/* Levels reordered for the 2-bit bytes: in each block of 128 columns (32 bytes), plane j holds the levels
 * of columns 4b + j, b = 0..31, so that the j-th 2-bit field of 32 bytes meets its levels in one vector.
 * Columns past k are 0. `planes` has room for ceil(ceil(k / 4) / 32) * 128 values. */
static void plane_levels(const int8_t *levels, int64_t k, int8_t *planes) {
  const int64_t blocks = ((k + 3) / 4 + 31) / 32;
  for (int64_t c = 0; c < blocks; c++)
    for (int j = 0; j < 4; j++)
      for (int b = 0; b < 32; b++) {
        const int64_t col = 4 * (32 * c + b) + j;
        planes[128 * c + 32 * j + b] = col < k ? levels[col] : 0;
      }
}

/* s[r] = levels . codes[r] for `rows` (<= ROWS) rows of 2-bit bytes (kb bytes a row) from `packed`. */
static void dot_rows_2bit(const int8_t *levels, const int8_t *planes, int32_t level_sum, const uint8_t *packed,
                          int64_t k, int64_t kb, int rows, int32_t *s) {
  int64_t b = 0;
  (void)planes; /* unused without AVX2 */
  for (int r = 0; r < rows; r++) s[r] = 0;
#if defined(__AVX2__)
  const __m256i ones = _mm256_set1_epi16(1), three = _mm256_set1_epi8(3);
  __m256i acc[ROWS];
  for (int r = 0; r < rows; r++) acc[r] = _mm256_setzero_si256();
  for (; b + 32 <= kb; b += 32) {
    const int8_t *plane = planes + 4 * b;
    __m256i l[4];
    for (int j = 0; j < 4; j++) l[j] = _mm256_loadu_si256((const __m256i *)(plane + 32 * j));
    for (int r = 0; r < rows; r++) {
      const __m256i p = _mm256_loadu_si256((const __m256i *)(packed + r * kb + b));
      /* |sum| <= 4 fields * 2 * 2 * 127 = 2032 a lane: int16 holds it; widened to int32 every block */
      __m256i part = _mm256_maddubs_epi16(_mm256_and_si256(p, three), l[0]);
      for (int j = 1; j < 4; j++)
        part = _mm256_add_epi16(part, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(p, 2 * j), three), l[j]));
      acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(part, ones));
    }
  }
  hsum_rows(acc, rows, s);
#endif
  for (; b < kb; b++)
    for (int j = 0; j < 4 && 4 * b + j < k; j++)
      for (int r = 0; r < rows; r++) s[r] += (int32_t)((packed[r * kb + b] >> (2 * j)) & 3) * levels[4 * b + j];
  for (int r = 0; r < rows; r++) s[r] -= level_sum;
}

/* The token's integer levels; returns its scale g / q, or NAN for a token that is not finite. */
static float quantize_token(const float *x, int64_t k, int32_t q, float eps, int8_t *levels) {
  float g = 0.0f;
  int finite = 1;
  int64_t j = 0;
#if defined(__AVX2__)
  /* max is exact in any order; a lane compares false against FLT_MAX for NaN and inf */
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
  const __m256 largest = _mm256_set1_ps(3.40282347e38f);
  __m256 vmax = _mm256_setzero_ps(), vfinite = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  for (; j + 8 <= k; j += 8) {
    const __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + j), _mm256_castsi256_ps(abs_mask));
    vmax = _mm256_max_ps(vmax, a);
    vfinite = _mm256_and_ps(vfinite, _mm256_cmp_ps(a, largest, _CMP_LE_OQ));
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, vmax);
  for (int l = 0; l < 8; l++) g = lanes[l] > g ? lanes[l] : g;
  finite = _mm256_movemask_ps(vfinite) == 0xff;
#endif
  for (; j < k; j++) {
    float a = fabsf(x[j]);
    g = a > g ? a : g;
    finite &= a <= 3.40282347e38f; /* false for NaN and inf */
  }
  if (!finite) return NAN;
  g = g < eps ? eps : g;
  const float r = (1.0f / g) * (float)q, fq = (float)q;
  for (j = 0; j < k; j++) {
    float v = rintf(x[j] * r);
    v = v < -fq ? -fq : v;
    levels[j] = (int8_t)(v > fq ? fq : v);
  }
  return g / fq;
}

/* A token's quantized form: its levels (and their 2-bit planes), their sum, its scale (NAN: not finite). */
typedef struct {
  int8_t *levels, *planes;
  int32_t level_sum;
  float scale;
} lh_token;

static void prepare_token(const lh_layer *p, const float *x, lh_token *t) {
  t->scale = quantize_token(x, p->k, p->q, p->eps, t->levels);
  t->level_sum = 0;
  if (p->packed2 && !isnan(t->scale)) {
    plane_levels(t->levels, p->k, t->planes);
    for (int64_t j = 0; j < p->k; j++) t->level_sum += t->levels[j];
  }
}

/* Output rows o .. o + rows - 1 of one token. */
static void token_rows(const lh_layer *p, const lh_token *t, int64_t o, int rows, float *out) {
  if (isnan(t->scale)) {
    for (int r = 0; r < rows; r++) out[o + r] = NAN;
    return;
  }
  const int64_t kb = (p->k + 3) / 4;
  int32_t s[ROWS];
  if (p->packed2)
    dot_rows_2bit(t->levels, t->planes, t->level_sum, (const uint8_t *)p->codes + o * kb, p->k, kb, rows, s);
  else
    dot_rows(t->levels, p->codes + o * p->k, p->k, rows, s);
  for (int r = 0; r < rows; r++) {
    const float y = ((float)s[r] * t->scale) * p->w_scale[p->per_row ? o + r : 0];
    out[o + r] = p->bias ? y + p->bias[o + r] : y;
  }
}

#define TILE 16 /* tokens quantized together; each group of ROWS weight rows is read once for all of them */

/* out (m, n) = the layer applied to x (m, k), both fp32 row-major; 0 on success, -1 if out of memory. */
int lh_int8_linear(const lh_layer *p, const float *x, float *out, int64_t m) {
  const size_t planes = p->packed2 ? (size_t)((p->k + 3) / 4 + 31) / 32 * 128 : 0;
  const size_t per_token = (size_t)p->k + planes;
  int8_t *buffer = malloc(TILE * per_token + 1);
  if (!buffer) return -1;
  lh_token tokens[TILE];
  for (int64_t first = 0; first < m; first += TILE) {
    const int64_t count = m - first < TILE ? m - first : TILE;
    for (int64_t i = 0; i < count; i++) {
      tokens[i].levels = buffer + i * per_token;
      tokens[i].planes = tokens[i].levels + p->k;
      prepare_token(p, x + (first + i) * p->k, &tokens[i]);
    }
    for (int64_t o = 0; o < p->n; o += ROWS) {
      const int rows = p->n - o < ROWS ? (int)(p->n - o) : ROWS;
      for (int64_t i = 0; i < count; i++) token_rows(p, &tokens[i], o, rows, out + (first + i) * p->n);
    }
  }
  free(buffer);
  return 0;
}
