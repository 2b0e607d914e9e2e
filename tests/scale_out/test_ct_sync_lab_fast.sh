# SPDX-License-Identifier: MIT
# test_ct_sync_lab.sh with ct_fastpath: ct_sync's kernel-made entries carried
# by the XDP fast path once established (docs/lb.md, ct_sync and ct_fastpath).
CT_LAB_MODE=fast
source "$LUABPF_SOURCE_DIR/tests/scale_out/test_ct_sync_lab.sh"
