// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * kvgen: synthetic KV streams with the structure of a rotary-embedding LLM.
 * Documentation/kv-generator.rst gives the model; the comments here say how
 * each part is computed.
 *
 * Random numbers: xoshiro256** (Blackman and Vigna, 2018), seeded through
 * splitmix64 from (seed, stream id).  Normal deviates are Irwin-Hall sums
 * of four 16-bit uniforms from one 64-bit draw, scaled to variance 1: close
 * enough to Gaussian for this purpose and free of log/sin calls, which
 * matters when the generator runs under an emulated CPU.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kvgen.h"
#include "pnm_internal.h"

struct kvgen {
	struct kvgen_params p;
	uint64_t rng[4];		/* xoshiro256** state */
	uint32_t pos;			/* position of the next token */
	unsigned int half;		/* rotary pairs, head_dim / 2 */

	/* cos and sin of pos * theta_i, advanced by one rotation per token */
	double *rot_cos, *rot_sin;
	double *step_cos, *step_sin;	/* cos and sin of theta_i */

	float *key_mean;		/* [d] pre-rotary outliers and bias */
	float *query_base;		/* [d] pre-rotary query direction */
	float *query_head;		/* [group][d] per query head offset */
	float *topic_key;		/* [d] key topic, pre-rotary */
	float *topic_value;		/* [d] value topic */
	unsigned int *outliers;		/* [2 * outlier_pairs] channels */

	float *anchor;			/* [anchors][d] rotated key topics */
	uint32_t *anchor_pos;		/* [anchors] their positions */
	unsigned int n_anchors;		/* filled entries of the bank */
	uint64_t n_candidates;		/* tokens offered to the bank */
	unsigned int *recalled;		/* [recall] bank indices */
	unsigned int n_recalled;
	float *recall_weight;		/* [group][recall] */
	float *scratch;			/* [d] */
};

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(uint64_t *s)
{
	uint64_t result = rotl64(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return result;
}

/* Uniform in [0, 1) with 24 random bits. */
static float rand_uniform(struct kvgen *g)
{
	return (float)(xoshiro_next(g->rng) >> 40) * 0x1p-24f;
}

static uint32_t rand_below(struct kvgen *g, uint32_t n)
{
	return (uint32_t)(((xoshiro_next(g->rng) >> 32) * n) >> 32);
}

/*
 * Approximately standard normal: the sum of four uniforms on [0, 1) has
 * mean 2 and variance 4/12, so (sum - 2) * sqrt(3) has variance 1.
 */
static float rand_normal(struct kvgen *g)
{
	uint64_t r = xoshiro_next(g->rng);
	uint32_t sum = (uint32_t)(r & 0xffff) + (uint32_t)((r >> 16) & 0xffff) +
		       (uint32_t)((r >> 32) & 0xffff) + (uint32_t)(r >> 48);

	return ((float)sum * 0x1p-16f - 2.0f) * 1.7320508f;
}

void kvgen_default_params(struct kvgen_params *p, unsigned int head_dim,
			  unsigned int group)
{
	memset(p, 0, sizeof(*p));
	p->head_dim = head_dim;
	p->group = group;
	p->rope_base = 500000.0;
	p->outlier_pairs = head_dim >= 32 ? head_dim / 32 : 1;
	p->outlier_scale = 8.0f;
	p->key_bias = 0.3f;
	p->sink_tokens = 4;
	p->sink_scale = 20.0f;
	p->topic_rho = 0.98f;
	p->segment_rate = 1.0f / 256;
	p->key_noise = 0.5f;
	p->value_noise = 0.5f;
	p->query_noise = 0.3f;
	p->anchors = 16;
	p->recall = 2;
	p->recall_scale = 0.6f;
	p->recall_switch = 0.125f;
}

static int kvgen_check_params(const struct kvgen_params *p)
{
	if (!p->head_dim || p->head_dim % 2)
		return pnm_error(-EINVAL, "kvgen: head_dim %u is not a positive even number",
				 p->head_dim);
	if (!p->group)
		return pnm_error(-EINVAL, "kvgen: group 0; a KV head serves at least one query head");
	if (!(p->rope_base > 1.0))
		return pnm_error(-EINVAL, "kvgen: rope_base %g is not above 1",
				 p->rope_base);
	if (p->outlier_pairs > p->head_dim / 4)
		return pnm_error(-EINVAL,
				 "kvgen: %u outlier pairs do not fit the %u low-frequency pairs of head_dim %u",
				 p->outlier_pairs, p->head_dim / 4, p->head_dim);
	if (!(p->topic_rho >= 0.0f && p->topic_rho < 1.0f))
		return pnm_error(-EINVAL, "kvgen: topic_rho %g is outside [0, 1)",
				 (double)p->topic_rho);
	if (!(p->segment_rate >= 0.0f && p->segment_rate <= 1.0f))
		return pnm_error(-EINVAL, "kvgen: segment_rate %g is outside [0, 1]",
				 (double)p->segment_rate);
	if (p->recall > p->anchors)
		return pnm_error(-EINVAL, "kvgen: recall %u exceeds the %u anchors",
				 p->recall, p->anchors);
	return 0;
}

static int kvgen_alloc(struct kvgen *g)
{
	size_t d = g->p.head_dim, h = g->half;

	g->rot_cos = calloc(h, sizeof(double));
	g->rot_sin = calloc(h, sizeof(double));
	g->step_cos = calloc(h, sizeof(double));
	g->step_sin = calloc(h, sizeof(double));
	g->key_mean = calloc(d, sizeof(float));
	g->query_base = calloc(d, sizeof(float));
	g->query_head = calloc(d * g->p.group, sizeof(float));
	g->topic_key = calloc(d, sizeof(float));
	g->topic_value = calloc(d, sizeof(float));
	g->outliers = calloc(2 * g->p.outlier_pairs + 1, sizeof(unsigned int));
	g->anchor = calloc(d * g->p.anchors + 1, sizeof(float));
	g->anchor_pos = calloc(g->p.anchors + 1, sizeof(uint32_t));
	g->recalled = calloc(g->p.recall + 1, sizeof(unsigned int));
	g->recall_weight = calloc((size_t)g->p.group * g->p.recall + 1,
				  sizeof(float));
	g->scratch = calloc(d, sizeof(float));

	if (!g->rot_cos || !g->rot_sin || !g->step_cos || !g->step_sin ||
	    !g->key_mean || !g->query_base || !g->query_head ||
	    !g->topic_key || !g->topic_value || !g->outliers || !g->anchor ||
	    !g->anchor_pos || !g->recalled || !g->recall_weight || !g->scratch)
		return pnm_error(-ENOMEM, "kvgen: out of memory for head_dim %u",
				 g->p.head_dim);
	return 0;
}

/*
 * Rotary frequencies theta_i = base^(-2i / d) for pair i = (channel i,
 * channel i + d/2), the "rotate half" pairing of Llama's Hugging Face
 * implementation.  High i rotate slowly.
 */
static void kvgen_init_rotary(struct kvgen *g)
{
	unsigned int i;

	for (i = 0; i < g->half; i++) {
		double theta = pow(g->p.rope_base,
				   -2.0 * i / (double)g->p.head_dim);

		g->step_cos[i] = cos(theta);
		g->step_sin[i] = sin(theta);
		g->rot_cos[i] = 1.0;
		g->rot_sin[i] = 0.0;
	}
}

/*
 * Outliers sit in distinct pairs of the slowest-rotating half of the
 * pairs, as the large key channels of Llama models do, with both channels
 * of a pair large and a random sign.
 */
static void kvgen_init_outliers(struct kvgen *g)
{
	unsigned int low = g->half / 2, n = 0, i;

	while (n < g->p.outlier_pairs) {
		unsigned int pair = g->half - low + rand_below(g, low);
		int taken = 0;

		for (i = 0; i < n; i++)
			taken |= g->outliers[2 * i] == pair;
		if (taken)
			continue;
		g->outliers[2 * n] = pair;
		g->outliers[2 * n + 1] = pair + g->half;
		n++;
	}
	for (i = 0; i < 2 * n; i++) {
		float magnitude = g->p.outlier_scale *
				  (0.75f + 0.5f * rand_uniform(g));

		g->key_mean[g->outliers[i]] =
			rand_uniform(g) < 0.5f ? -magnitude : magnitude;
	}
}

/*
 * The query direction carries most of its energy in the slowest quarter
 * of the pairs; there the rotary angle (pos - sink position) * theta_i
 * stays small over a long context, so sink keys built along this
 * direction keep scoring high, as attention sinks do in real models.
 */
static void kvgen_init_queries(struct kvgen *g)
{
	unsigned int d = g->p.head_dim, slow = g->half - g->half / 4, c, k;

	for (c = 0; c < d; c++) {
		float std = c % g->half >= slow ? 1.0f : 0.3f;

		g->query_base[c] = std * rand_normal(g);
		if (!g->key_mean[c])
			g->key_mean[c] = g->p.key_bias * rand_normal(g);
	}
	for (c = 0; c < d * g->p.group; c++)
		g->query_head[c] = 0.3f * rand_normal(g);
	for (k = 0; k < g->p.group * g->p.recall; k++)
		g->recall_weight[k] = 0.5f + rand_uniform(g);
}

struct kvgen *kvgen_new(const struct kvgen_params *p, uint64_t seed,
			uint64_t stream_id)
{
	uint64_t mix;
	struct kvgen *g;
	int i;

	if (!p) {
		pnm_error(-EINVAL, "kvgen: params is NULL");
		return NULL;
	}
	if (kvgen_check_params(p))
		return NULL;
	g = calloc(1, sizeof(*g));
	if (!g) {
		pnm_error(-ENOMEM, "kvgen: out of memory");
		return NULL;
	}
	g->p = *p;
	g->half = p->head_dim / 2;
	if (kvgen_alloc(g)) {
		kvgen_free(g);
		return NULL;
	}

	mix = seed ^ rotl64(stream_id * 0xd1342543de82ef95ULL, 32);
	for (i = 0; i < 4; i++)
		g->rng[i] = splitmix64(&mix);

	kvgen_init_rotary(g);
	kvgen_init_outliers(g);
	kvgen_init_queries(g);
	return g;
}

void kvgen_free(struct kvgen *g)
{
	if (!g)
		return;
	free(g->rot_cos);
	free(g->rot_sin);
	free(g->step_cos);
	free(g->step_sin);
	free(g->key_mean);
	free(g->query_base);
	free(g->query_head);
	free(g->topic_key);
	free(g->topic_value);
	free(g->outliers);
	free(g->anchor);
	free(g->anchor_pos);
	free(g->recalled);
	free(g->recall_weight);
	free(g->scratch);
	free(g);
}

uint32_t kvgen_position(const struct kvgen *g)
{
	return g->pos;
}

/* Rotate @x in place by the current position's angles. */
static void kvgen_rotate(const struct kvgen *g, float *x)
{
	unsigned int i, h = g->half;

	for (i = 0; i < h; i++) {
		double a = x[i], b = x[i + h];

		x[i] = (float)(a * g->rot_cos[i] - b * g->rot_sin[i]);
		x[i + h] = (float)(a * g->rot_sin[i] + b * g->rot_cos[i]);
	}
}

/*
 * Advance the rotation by one position.  The recurrence in binary64 drifts
 * by about 1e-16 per step, far below binary32 resolution even after 2^24
 * tokens.
 */
static void kvgen_advance(struct kvgen *g)
{
	unsigned int i;

	for (i = 0; i < g->half; i++) {
		double c = g->rot_cos[i], s = g->rot_sin[i];

		g->rot_cos[i] = c * g->step_cos[i] - s * g->step_sin[i];
		g->rot_sin[i] = c * g->step_sin[i] + s * g->step_cos[i];
	}
	g->pos++;
}

/*
 * Topics follow a first-order autoregression, x' = rho x + sqrt(1 - rho^2)
 * e, so each channel stays standard normal and neighbours are correlated
 * by rho^distance; a new segment draws a fresh topic.
 */
static void kvgen_step_topics(struct kvgen *g)
{
	unsigned int c, d = g->p.head_dim;
	float rho = g->p.topic_rho, innov = sqrtf(1.0f - rho * rho);

	if (g->pos == g->p.sink_tokens || rand_uniform(g) < g->p.segment_rate) {
		for (c = 0; c < d; c++) {
			g->topic_key[c] = rand_normal(g);
			g->topic_value[c] = rand_normal(g);
		}
		return;
	}
	for (c = 0; c < d; c++) {
		g->topic_key[c] = rho * g->topic_key[c] + innov * rand_normal(g);
		g->topic_value[c] = rho * g->topic_value[c] +
				    innov * rand_normal(g);
	}
}

/*
 * Reservoir sampling (Vitter's algorithm R) keeps a uniform sample of the
 * non-sink tokens; an anchor stores the token's rotated key topic, the
 * part of its key that a query can match.
 */
static void kvgen_offer_anchor(struct kvgen *g, const float *rotated_topic)
{
	unsigned int d = g->p.head_dim, slot;

	if (!g->p.anchors)
		return;
	g->n_candidates++;
	if (g->n_anchors < g->p.anchors) {
		slot = g->n_anchors++;
	} else {
		uint64_t r = xoshiro_next(g->rng) % g->n_candidates;

		if (r >= g->p.anchors)
			return;
		slot = (unsigned int)r;
	}
	memcpy(g->anchor + (size_t)slot * d, rotated_topic, d * sizeof(float));
	g->anchor_pos[slot] = g->pos;
}

static void kvgen_sink_token(struct kvgen *g, float *key, float *value)
{
	unsigned int c, d = g->p.head_dim;
	float norm = 0.0f, along;

	for (c = 0; c < d; c++)
		norm += g->query_base[c] * g->query_base[c];
	along = norm > 0.0f ? g->p.sink_scale / sqrtf(norm) : 0.0f;

	/* Sink values are short: attention parked on a sink adds little. */
	for (c = 0; c < d; c++) {
		key[c] = g->key_mean[c] + along * g->query_base[c] +
			 g->p.key_noise * rand_normal(g);
		value[c] = 0.1f * g->p.value_noise * rand_normal(g);
	}
	kvgen_rotate(g, key);
}

void kvgen_next(struct kvgen *g, float *key, float *value)
{
	unsigned int c, d = g->p.head_dim;

	if (g->pos < g->p.sink_tokens) {
		kvgen_sink_token(g, key, value);
		kvgen_advance(g);
		return;
	}

	kvgen_step_topics(g);
	for (c = 0; c < d; c++) {
		key[c] = g->key_mean[c] + g->topic_key[c] +
			 g->p.key_noise * rand_normal(g);
		value[c] = g->topic_value[c] + g->p.value_noise * rand_normal(g);
	}
	kvgen_rotate(g, key);

	memcpy(g->scratch, g->topic_key, d * sizeof(float));
	kvgen_rotate(g, g->scratch);
	kvgen_offer_anchor(g, g->scratch);
	kvgen_advance(g);
}

static int kvgen_is_recalled(const struct kvgen *g, unsigned int anchor)
{
	unsigned int j;

	for (j = 0; j < g->n_recalled; j++)
		if (g->recalled[j] == anchor)
			return 1;
	return 0;
}

static unsigned int kvgen_pick_anchor(struct kvgen *g)
{
	unsigned int a;

	do
		a = rand_below(g, g->n_anchors);
	while (kvgen_is_recalled(g, a));
	return a;
}

/*
 * Consecutive queries mostly recall the same anchors: the set fills up as
 * the bank does, then each step swaps one anchor with probability
 * recall_switch.  The stable part is what makes pages "steady".
 */
static void kvgen_update_recall(struct kvgen *g)
{
	while (g->n_recalled < g->p.recall && g->n_recalled < g->n_anchors) {
		unsigned int a = kvgen_pick_anchor(g);

		g->recalled[g->n_recalled++] = a;
	}
	if (g->n_recalled && g->n_anchors > g->n_recalled &&
	    rand_uniform(g) < g->p.recall_switch) {
		unsigned int j = rand_below(g, g->n_recalled);

		g->recalled[j] = kvgen_pick_anchor(g);
	}
}

void kvgen_query(struct kvgen *g, float *q)
{
	unsigned int d = g->p.head_dim, grp, c, j;

	kvgen_update_recall(g);
	for (grp = 0; grp < g->p.group; grp++) {
		float *qg = q + (size_t)grp * d;
		const float *head = g->query_head + (size_t)grp * d;

		for (c = 0; c < d; c++)
			qg[c] = g->query_base[c] + head[c] +
				g->p.query_noise * rand_normal(g);
		kvgen_rotate(g, qg);

		for (j = 0; j < g->n_recalled; j++) {
			const float *a = g->anchor + (size_t)g->recalled[j] * d;
			float w = g->p.recall_scale *
				  g->recall_weight[grp * g->p.recall + j];

			for (c = 0; c < d; c++)
				qg[c] += w * a[c];
		}
	}
}

void kvgen_outlier_channels(const struct kvgen *g, unsigned int *channels)
{
	memcpy(channels, g->outliers,
	       2 * g->p.outlier_pairs * sizeof(*channels));
}

unsigned int kvgen_recalled(const struct kvgen *g, uint32_t *positions)
{
	unsigned int j;

	for (j = 0; j < g->n_recalled; j++)
		positions[j] = g->anchor_pos[g->recalled[j]];
	return g->n_recalled;
}
