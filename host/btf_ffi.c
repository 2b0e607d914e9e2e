// SPDX-License-Identifier: MIT
/*
 * BTF -> LuaJIT FFI declarations, and the decode modes shared by ring and
 * perf buffers. The declaration of an event struct is one anonymous, packed
 * struct with explicit padding, every nested type inlined and every typedef
 * resolved to a <stdint.h> name: offsets match BTF exactly whatever the BPF
 * side's packing, and nothing is added to ffi.cdef's global namespace, so two
 * objects may both have a different `struct event`.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luabpf.h"

#define MAX_DEPTH 32

struct emitter {
	const struct btf *btf;
	struct lbpf_buf *out;
	char *err;
	size_t errlen;
	int pads; /* padding fields so far: names them __pad0, __pad1... */
};

static void put(struct emitter *e, const char *s)
{
	lbpf_buf__append(e->out, s, strlen(s));
}

static void putf(struct emitter *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct emitter *e, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	put(e, tmp);
}

static int fail(struct emitter *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct emitter *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->err, e->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static void pad(struct emitter *e, uint32_t n)
{
	if (n)
		putf(e, "uint8_t __pad%d[%u]; ", e->pads++, n);
}

static const char *int_name(uint32_t size, bool is_signed)
{
	switch (size) {
	case 1:
		return is_signed ? "int8_t" : "uint8_t";
	case 2:
		return is_signed ? "int16_t" : "uint16_t";
	case 4:
		return is_signed ? "int32_t" : "uint32_t";
	case 8:
		return is_signed ? "int64_t" : "uint64_t";
	}
	return NULL;
}

static int emit_type(struct emitter *e, uint32_t id, const char *decl, int depth);

static int emit_members(struct emitter *e, const struct btf_type *t, int depth)
{
	const struct btf_member *m = btf_members(t);
	bool is_union = btf_is_union(t);
	uint32_t pos = 0;

	for (uint16_t i = 0; i < btf_vlen(t); i++, m++) {
		uint32_t bit = btf_member_bit_offset(t, i);
		uint32_t bits = btf_member_bitfield_size(t, i);
		const char *name = btf__name_by_offset(e->btf, m->name_off);
		__s64 sz;

		/* Bitfields are left to the padding: read them in table mode. */
		if (bits || bit % 8)
			continue;
		sz = btf__resolve_size(e->btf, m->type);
		if (sz < 0)
			return fail(e, "member '%s' has no size", name ? name : "?");
		if (!is_union) {
			if (bit / 8 < pos)
				continue; /* overlaps what came before: can't say it in C */
			pad(e, bit / 8 - pos);
		}
		if (emit_type(e, m->type, name ? name : "", depth + 1))
			return -1;
		put(e, "; ");
		if (is_union)
			pos = (uint32_t)sz > pos ? (uint32_t)sz : pos;
		else
			pos = bit / 8 + (uint32_t)sz;
	}
	if (t->size > pos) {
		if (is_union)
			putf(e, "uint8_t __pad%d[%u]; ", e->pads++, t->size);
		else
			pad(e, t->size - pos);
	}
	return 0;
}

/* Emit "TYPE DECL" for type id, DECL being a C declarator ("comm[16]"). */
static int emit_type(struct emitter *e, uint32_t id, const char *decl, int depth)
{
	const struct btf_type *t;
	const char *sep = *decl ? " " : "";
	char inner[512];

	if (depth > MAX_DEPTH)
		return fail(e, "types nest deeper than %d levels", MAX_DEPTH);
	/* typedef, const, volatile, restrict, type tags: the layout is the target's */
	id = btf__resolve_type(e->btf, id) < 0 ? id : (uint32_t)btf__resolve_type(e->btf, id);
	t = btf__type_by_id(e->btf, id);
	if (!t)
		return fail(e, "no BTF type %u", id);
	switch (btf_kind(t)) {
	case BTF_KIND_INT: {
		uint8_t enc = btf_int_encoding(t);
		const char *n = int_name(t->size, enc & BTF_INT_SIGNED);

		if (enc & BTF_INT_BOOL)
			n = "bool";
		else if ((enc & BTF_INT_CHAR) && t->size == 1)
			n = "char";
		else if (t->size == 1 && !strcmp(btf__name_by_offset(e->btf, t->name_off), "char"))
			n = "char"; /* so ffi.string() reads char arrays */
		if (!n) {
			putf(e, "uint8_t %s[%u]", decl, t->size); /* __int128 */
			return 0;
		}
		putf(e, "%s%s%s", n, sep, decl);
		return 0;
	}
	case BTF_KIND_ENUM:
	case BTF_KIND_ENUM64:
		putf(e, "%s%s%s", int_name(t->size, btf_kflag(t)) ?: "uint32_t", sep, decl);
		return 0;
	case BTF_KIND_PTR:
		/* A kernel address: a number to the consumer, never dereferenced. */
		putf(e, "uint64_t%s%s", sep, decl);
		return 0;
	case BTF_KIND_FLOAT:
		if (t->size == 4 || t->size == 8)
			putf(e, "%s%s%s", t->size == 4 ? "float" : "double", sep, decl);
		else
			putf(e, "uint8_t %s[%u]", decl, t->size);
		return 0;
	case BTF_KIND_ARRAY: {
		const struct btf_array *a = btf_array(t);

		snprintf(inner, sizeof(inner), "%s[%u]", decl, a->nelems);
		return emit_type(e, a->type, inner, depth + 1);
	}
	case BTF_KIND_STRUCT:
	case BTF_KIND_UNION:
		put(e, btf_is_union(t) ? "union " : "struct ");
		put(e, "__attribute__((packed)) { ");
		if (emit_members(e, t, depth))
			return -1;
		putf(e, "}%s%s", sep, decl);
		return 0;
	case BTF_KIND_FWD:
		return fail(e, "'%s' is only declared, not defined, in BTF",
			    btf__name_by_offset(e->btf, t->name_off));
	default:
		return fail(e, "BTF kind %u can't be laid out in an event", btf_kind(t));
	}
}

int lbpf_btf__ffi_decl(const struct btf *btf, uint32_t id, struct lbpf_buf *out, char *err,
		       size_t errlen)
{
	struct emitter e = { .btf = btf, .out = out, .err = err, .errlen = errlen };

	return emit_type(&e, id, "", 0);
}

/* "struct event", "union u", or a typedef's name. */
static int32_t find_type(const struct btf *btf, const char *spec)
{
	if (!strncmp(spec, "struct ", 7))
		return btf__find_by_name_kind(btf, spec + 7, BTF_KIND_STRUCT);
	if (!strncmp(spec, "union ", 6))
		return btf__find_by_name_kind(btf, spec + 6, BTF_KIND_UNION);
	return btf__find_by_name_kind(btf, spec, BTF_KIND_TYPEDEF);
}

void lbpf_decode__parse(lua_State *L, struct lbpf_decode *d, const char *spec,
			const struct lbpf_map_view *v, const char *what)
{
	const char *type = spec;
	struct btf *copy;
	const void *raw;
	__u32 raw_size;
	int32_t id;
	__s64 size;

	memset(d, 0, sizeof(*d));
	if (!strcmp(spec, "raw")) {
		d->mode = LBPF_DECODE_RAW;
		return;
	}
	if (!strncmp(spec, "cdata:", 6)) {
		d->mode = LBPF_DECODE_CDATA;
		type = spec + 6;
	} else {
		d->mode = LBPF_DECODE_TABLE;
	}
	while (*type == ' ')
		type++;
	if (strncmp(type, "struct ", 7) && strncmp(type, "union ", 6) &&
	    d->mode == LBPF_DECODE_TABLE && strchr(type, ' '))
		luaL_error(L,
			   "%s: decode '%s' is not one of \"struct NAME\", \"cdata:struct NAME\", "
			   "\"raw\"",
			   what, spec);
	if (!v->btf)
		luaL_error(L,
			   "%s: decode '%s' needs BTF, and map '%s' has none (build the BPF "
			   "object with clang -g), or use decode = \"raw\"",
			   what, spec, v->name);
	id = find_type(v->btf, type);
	if (id <= 0)
		luaL_error(L, "%s: decode '%s': no %s in the BTF of map '%s' (a type only used "
			      "inside functions is left out: name it in a global, e.g. "
			      "`%s *unused_event __attribute__((unused));`)",
			   what, spec, strchr(type, ' ') ? type : "such typedef", v->name, type);
	size = btf__resolve_size(v->btf, (uint32_t)id);
	if (size <= 0)
		luaL_error(L, "%s: decode '%s': the type has no size", what, spec);
	/* Our own copy: the object, and its BTF, may be closed before we are. */
	raw = btf__raw_data(v->btf, &raw_size);
	copy = raw ? btf__new(raw, raw_size) : NULL;
	if (!copy)
		luaL_error(L, "%s: can't copy the BTF of map '%s': %s", what, v->name,
			   strerror(errno));
	d->btf = copy;
	d->type_id = (uint32_t)id;
	d->size = (uint32_t)size;
	snprintf(d->type_name, sizeof(d->type_name), "%s", type);
	if (d->mode == LBPF_DECODE_CDATA) {
		struct lbpf_buf out = { 0 };
		char err[256];

		if (lbpf_btf__ffi_decl(copy, d->type_id, &out, err, sizeof(err))) {
			lbpf_buf__free(&out);
			btf__free(copy);
			d->btf = NULL;
			luaL_error(L, "%s: decode '%s': %s", what, spec, err);
		}
		d->decl = out.data;
	}
}

void lbpf_decode__free(struct lbpf_decode *d)
{
	btf__free(d->btf);
	free(d->decl);
	d->btf = NULL;
	d->decl = NULL;
}
