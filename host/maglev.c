// SPDX-License-Identifier: MIT
/*
 * The inner loops of the weighted Maglev build and publish
 * (lua/luabpf/lb/maglev.lua, lua/luabpf/lb/_publish.lua), called through
 * ffi.C: the Lua side hashes the names, orders the backends and owns every
 * array; these fill the table and find the slots that changed. Pure
 * computation, no Lua state, so it sits beside the base layer and calls
 * nothing.
 */
#include <stdint.h>
#include <stdlib.h>

/*
 * Which slots are taken, one bit each: the probes of a fill (about
 * size * ln(size) of them, 730,000 for 65,537 slots) read 8 KiB that stay in
 * the L1 cache instead of the 256 KiB table.
 */
static inline int taken(const uint64_t *bits, uint32_t c)
{
	return (bits[c >> 6] >> (c & 63)) & 1;
}

static inline void take(uint64_t *bits, uint32_t c)
{
	bits[c >> 6] |= (uint64_t)1 << (c & 63);
}

/* x^-1 mod m (m prime, 0 < x < m < 2^26), by the extended Euclidean algorithm. */
static uint64_t inverse(uint64_t x, uint64_t m)
{
	int32_t t = 0, nt = 1, r = (int32_t)m, nr = (int32_t)x;

	while (nr) {
		int32_t q = r / nr, tmp;

		tmp = t - q * nt;
		t = nt;
		nt = tmp;
		tmp = r - q * nr;
		r = nr;
		nr = tmp;
	}
	return (uint64_t)(t < 0 ? (int64_t)t + (int64_t)m : t);
}

/*
 * The fill's last TAIL free slots. Probing for them is most of the work:
 * with f slots free a probe finds one with chance f/size, so the last 256
 * take size * (ln 256 + 0.58) probes, 400,000 of the 770,000 for 65,537
 * slots. Instead, a turn that starts at c with skip sk reaches free slot x
 * after j = (x - c) / sk steps (mod size, a prime: every slot is reached
 * once), and the first free slot its probes would find is the x with the
 * smallest j: one multiplication per free slot, 33,000 in all. Measured on
 * the fill alone (1,000 backends): 1.9 ms without, 1.3 ms with TAIL 256;
 * 384 and 128 were no better, 768 was worse.
 */
#define TAIL 256

struct tail {
	uint32_t *free; /* the free slots, in no order */
	uint32_t nfree;
	uint64_t *inv;  /* skip[k]^-1 mod size */
	double rsize;   /* 1.0 / size */
};

/* a * b mod m for a, b < m < 2^26, without a division. */
static inline uint64_t mulmod(uint64_t a, uint64_t b, uint64_t m, double rm)
{
	uint64_t p = a * b, q = (uint64_t)((double)p * rm);
	int64_t r = (int64_t)(p - q * m);

	if (r < 0)
		r += (int64_t)m;
	else if (r >= (int64_t)m)
		r -= (int64_t)m;
	return (uint64_t)r;
}

/*
 * The slot a turn of backend k (skip sk) from c takes in tail mode; it
 * leaves tl->free. The inverse of sk is made on k's first turn here: about
 * a quarter of 1,000 backends take one, and 1,000 inverses were 4% of a fill.
 */
static uint32_t tail_take(struct tail *tl, uint32_t size, uint32_t k, uint32_t c, uint32_t sk)
{
	uint64_t best = UINT64_MAX, inv = tl->inv[k] ? tl->inv[k] : (tl->inv[k] = inverse(sk, size));
	uint32_t i, bi = 0, x;

	for (i = 0; i < tl->nfree; i++) {
		int64_t d = (int64_t)tl->free[i] - c;
		uint64_t j = mulmod((uint64_t)(d < 0 ? d + size : d), inv, size, tl->rsize);

		if (j < best) {
			best = j;
			bi = i;
		}
	}
	x = tl->free[bi];
	tl->free[bi] = tl->free[--tl->nfree];
	return x;
}

static int tail_start(struct tail *tl, const uint64_t *bits, uint32_t size, uint32_t live)
{
	uint32_t c, k;

	tl->free = malloc(TAIL * sizeof(*tl->free));
	tl->inv = malloc(live * sizeof(*tl->inv));
	if (!tl->free || !tl->inv)
		return -1;
	tl->nfree = 0;
	for (c = 0; c < size; c++) {
		if (!taken(bits, c))
			tl->free[tl->nfree++] = c;
	}
	for (k = 0; k < live; k++)
		tl->inv[k] = 0; /* made on the backend's first turn in tail mode */
	tl->rsize = 1.0 / size;
	return 0;
}

/// Fill entry[0..size) with pos[k] of the backends k = 0..live-1 in turns:
/// each round backend k earns step[k] turns (its weight over the top weight)
/// into credit[k], and each whole turn places it in the next free slot of its
/// permutation nextc[k], nextc[k] + skip[k], ... (mod size). A slot is free
/// when it holds 0 (all are, as the build calls it). The same arithmetic as
/// the Lua loop, so the same table. nextc and credit are updated. Returns the
/// number of slots filled (size when live > 0 and some step > 0), or 0 when
/// out of memory (entry partly filled: the caller fills again another way)
/// or size is 2^26 or more.
uint32_t lbpf_maglev__fill(int32_t *entry, uint32_t size, uint32_t live, const int32_t *pos,
			   uint32_t *nextc, const uint32_t *skip, const double *step,
			   double *credit)
{
	uint32_t filled = 0, k, c, sk;
	struct tail tl = { 0 };
	uint64_t *bits;
	int any = 0, tail = 0;

	for (k = 0; k < live; k++)
		any |= step[k] > 0;
	if (!any || !size || size >= 1u << 26)
		return 0;
	bits = calloc((size + 63) / 64, sizeof(*bits));
	if (!bits)
		return 0;
	for (c = 0; c < size; c++) {
		if (entry[c]) {
			take(bits, c);
			filled++;
		}
	}
	while (filled < size) {
		for (k = 0; k < live; k++) {
			double cr = credit[k] + step[k];

			if (cr >= 1) {
				c = nextc[k];
				sk = skip[k];
				do {
					cr = cr - 1;
					if (!tail && size - filled <= TAIL) {
						if (tail_start(&tl, bits, size, live) < 0) {
							filled = 0;
							goto out;
						}
						tail = 1;
					}
					if (tail) {
						c = tail_take(&tl, size, k, c, sk);
					} else {
						while (taken(bits, c)) {
							c += sk;
							if (c >= size)
								c -= size;
						}
					}
					take(bits, c);
					entry[c] = pos[k];
					c += sk;
					if (c >= size)
						c -= size;
					if (++filled == size) {
						nextc[k] = c;
						credit[k] = cr;
						goto out;
					}
				} while (cr >= 1);
				nextc[k] = c;
			}
			credit[k] = cr;
		}
	}
out:
	free(tl.free);
	free(tl.inv);
	free(bits);
	return filled;
}

/// Publish's diff of a built table against what a Maglev half holds: for each
/// slot s, id = ids[entry[s]] (entry: list positions 0..npos-1, 0 an empty
/// slot); counts[entry[s]] is incremented; where have[s] differs it becomes
/// id and (base + s, id) is appended to keys and vals (room for size each),
/// and, when mapped is not NULL (the half in the memory-mapped map: an array
/// map's elements are 8 bytes apart), mapped[s] becomes id too.
/// Returns how many were appended, or size + 1 if an entry is out of range
/// (nothing is trustworthy then: have and mapped are partly updated).
uint32_t lbpf_maglev__diff(const int32_t *entry, uint32_t size, const uint32_t *ids, uint32_t npos,
			   uint32_t *have, uint32_t base, uint32_t *keys, uint32_t *vals,
			   int32_t *counts, uint64_t *mapped)
{
	uint32_t n = 0, s;

	for (s = 0; s < size; s++) {
		uint32_t e = (uint32_t)entry[s], id;

		if (e >= npos)
			return size + 1;
		id = ids[e];
		counts[e]++;
		if (have[s] != id) {
			have[s] = id;
			keys[n] = base + s;
			vals[n] = id;
			if (mapped)
				mapped[s] = id;
			n++;
		}
	}
	return n;
}
