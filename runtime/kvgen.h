/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kvgen: a seeded generator of keys, values and queries that look like the
 * KV cache of a rotary-embedding LLM (Llama 3) rather than uniform noise:
 * outlier key channels, rotary position structure, attention sinks, topic
 * locality and queries that recall earlier segments.
 * Documentation/kv-generator.rst describes the model and its parameters.
 *
 * One generator produces one stream, (sequence, layer, kv-head), token by
 * token.  The same seed and stream id give the same numbers on every
 * machine that has IEEE binary32/binary64 arithmetic.
 */
#ifndef KVGEN_H
#define KVGEN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Model parameters; kvgen_default_params() gives the documented values. */
struct kvgen_params {
	unsigned int head_dim;		/* channels, even */
	unsigned int group;		/* query heads per KV head */
	double rope_base;		/* rotary base, 500000 in Llama 3 */
	unsigned int outlier_pairs;	/* rotary pairs carrying key outliers */
	float outlier_scale;		/* mean magnitude of an outlier channel */
	float key_bias;			/* std of the per-channel key bias */
	unsigned int sink_tokens;	/* leading tokens that act as sinks */
	float sink_scale;		/* sink key length along the query */
	float topic_rho;		/* per-token correlation of the topic */
	float segment_rate;		/* probability a token starts a segment */
	float key_noise;		/* std of per-token key noise */
	float value_noise;		/* std of per-token value noise */
	float query_noise;		/* std of per-step query noise */
	unsigned int anchors;		/* remembered past tokens queries recall */
	unsigned int recall;		/* anchors one query recalls */
	float recall_scale;		/* weight of a recalled anchor in a query */
	float recall_switch;		/* probability a step swaps one anchor */
};

struct kvgen;

/* Fill @p with the documented defaults for @head_dim and @group. */
void kvgen_default_params(struct kvgen_params *p, unsigned int head_dim,
			  unsigned int group);

/*
 * Create the generator of stream @stream_id under @seed.  Returns NULL and
 * leaves a message for pnm_last_error() when @p is invalid or memory is
 * short.
 */
struct kvgen *kvgen_new(const struct kvgen_params *p, uint64_t seed,
			uint64_t stream_id);
void kvgen_free(struct kvgen *g);

/* Position of the next token, i.e. tokens generated so far. */
uint32_t kvgen_position(const struct kvgen *g);

/* Generate the next token's key[head_dim] and value[head_dim]. */
void kvgen_next(struct kvgen *g, float *key, float *value);

/*
 * Generate the query of the next token, q[group][head_dim], at position
 * kvgen_position(); call it before kvgen_next() of that token, as a
 * decoder does.
 */
void kvgen_query(struct kvgen *g, float *q);

/* Copy the outlier key channels into @channels, 2 * outlier_pairs entries. */
void kvgen_outlier_channels(const struct kvgen *g, unsigned int *channels);

/*
 * Copy the positions of the anchors the last query recalled into
 * @positions, which has room for params.recall entries.  Returns how many
 * were copied (fewer while the stream is young).
 */
unsigned int kvgen_recalled(const struct kvgen *g, uint32_t *positions);

#ifdef __cplusplus
}
#endif

#endif /* KVGEN_H */
