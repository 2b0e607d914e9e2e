// SPDX-License-Identifier: MIT
/*
 * The inner loop of the weighted Maglev build (lua/luabpf/lb/maglev.lua),
 * called through ffi.C: the Lua side hashes the names, orders the backends
 * and owns every array; this fills the table. Pure computation, no Lua state,
 * so it sits beside the base layer and calls nothing.
 */
#include <stdint.h>

/// Fill entry[0..size) (all 0 on entry) with pos[k] of the backends
/// k = 0..live-1 in turns: each round backend k earns step[k] turns (its
/// weight over the top weight) into credit[k], and each whole turn places it
/// in the next free slot of its permutation nextc[k], nextc[k] + skip[k], ...
/// (mod size). The same arithmetic as the Lua loop, so the same table.
/// nextc and credit are updated. Returns the number of slots filled (size
/// when live > 0 and some step > 0).
uint32_t lbpf_maglev__fill(int32_t *entry, uint32_t size, uint32_t live, const int32_t *pos,
			   uint32_t *nextc, const uint32_t *skip, const double *step,
			   double *credit)
{
	uint32_t filled = 0, k, c, sk;
	int any = 0;

	for (k = 0; k < live; k++)
		any |= step[k] > 0;
	if (!any || !size)
		return 0;
	for (;;) {
		for (k = 0; k < live; k++) {
			double cr = credit[k] + step[k];

			if (cr >= 1) {
				c = nextc[k];
				sk = skip[k];
				do {
					cr = cr - 1;
					while (entry[c]) {
						c += sk;
						if (c >= size)
							c -= size;
					}
					entry[c] = pos[k];
					c += sk;
					if (c >= size)
						c -= size;
					if (++filled == size) {
						nextc[k] = c;
						credit[k] = cr;
						return filled;
					}
				} while (cr >= 1);
				nextc[k] = c;
			}
			credit[k] = cr;
		}
	}
}
