/* dedupe-audit's external sort: fixed-size records, sorted in memory
 * chunks of bounded size, spilled to unlinked temporary files as sorted
 * runs, and merged with a heap on the way out. Memory stays at the chunk
 * size plus one read buffer per run, whatever the number of records. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/source.h"
#include "base/util.h"

#define RUN_BUF (256 * 1024)

struct run {
	FILE *f;
	char *buf;        /* read buffer */
	size_t have, pos; /* bytes in buf, read position */
	bool done;
};

struct audit_sorter {
	size_t rec;
	int (*cmp)(const void *, const void *);
	char *mem;     /* the current chunk */
	size_t cap, n; /* records */
	struct run *runs;
	size_t nruns;
	bool merging;
	size_t mem_pos; /* no runs: position in mem */
	size_t *heap;   /* run indexes, smallest head first */
	size_t nheap;
	int64_t total;
};

struct audit_sorter *audit_sorter_new(size_t rec_size, int (*cmp)(const void *, const void *), size_t mem_bytes)
{
	struct audit_sorter *s = mqtx_xcalloc(1, sizeof(*s));
	s->rec = rec_size;
	s->cmp = cmp;
	s->cap = mem_bytes / rec_size;
	if (s->cap < 1024)
		s->cap = 1024;
	return s;
}

int64_t audit_sorter_count(const struct audit_sorter *s)
{
	return s->total;
}

static int spill(struct audit_sorter *s, struct mqtx_err *err)
{
	qsort(s->mem, s->n, s->rec, s->cmp);
	FILE *f = tmpfile();
	if (f == NULL)
		return mqtx_err_set(err, MQTX_E_IO, "cannot create a temporary file (TMPDIR): %s", strerror(errno));
	if (fwrite(s->mem, s->rec, s->n, f) != s->n || fflush(f) != 0) {
		int e = errno;
		fclose(f);
		return mqtx_err_set(err, MQTX_E_IO, "cannot write a temporary file (TMPDIR full?): %s", strerror(e));
	}
	s->runs = mqtx_xrealloc(s->runs, (s->nruns + 1) * sizeof(*s->runs));
	memset(&s->runs[s->nruns], 0, sizeof(*s->runs));
	s->runs[s->nruns++].f = f;
	s->n = 0;
	return 0;
}

int audit_sorter_add(struct audit_sorter *s, const void *rec, struct mqtx_err *err)
{
	if (s->mem == NULL)
		s->mem = mqtx_xmalloc(s->cap * s->rec);
	if (s->n == s->cap && spill(s, err) < 0)
		return -1;
	memcpy(s->mem + s->n * s->rec, rec, s->rec);
	s->n++;
	s->total++;
	return 0;
}

static const void *head(struct audit_sorter *s, size_t r)
{
	return s->runs[r].buf + s->runs[r].pos;
}

/* Makes sure run r has a whole record at pos; false at its end. */
static bool fill(struct audit_sorter *s, size_t r, struct mqtx_err *err, int *failed)
{
	struct run *ru = &s->runs[r];
	if (ru->pos + s->rec <= ru->have)
		return true;
	size_t left = ru->have - ru->pos;
	memmove(ru->buf, ru->buf + ru->pos, left);
	size_t want = (RUN_BUF / s->rec) * s->rec;
	size_t got = fread(ru->buf + left, 1, want - left, ru->f);
	if (got == 0 && ferror(ru->f)) {
		*failed = mqtx_err_set(err, MQTX_E_IO, "cannot read a temporary file: %s", strerror(errno));
		return false;
	}
	ru->have = left + got;
	ru->pos = 0;
	if (ru->have < s->rec) {
		ru->done = true;
		return false;
	}
	return true;
}

static void sift_down(struct audit_sorter *s, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < s->nheap && s->cmp(head(s, s->heap[l]), head(s, s->heap[m])) < 0)
			m = l;
		if (r < s->nheap && s->cmp(head(s, s->heap[r]), head(s, s->heap[m])) < 0)
			m = r;
		if (m == i)
			return;
		size_t t = s->heap[i];
		s->heap[i] = s->heap[m];
		s->heap[m] = t;
		i = m;
	}
}

int audit_sorter_rewind(struct audit_sorter *s, struct mqtx_err *err)
{
	if (!s->merging) {
		s->merging = true;
		if (s->nruns == 0) {
			if (s->n > 0)
				qsort(s->mem, s->n, s->rec, s->cmp);
		} else {
			if (s->n > 0 && spill(s, err) < 0)
				return -1;
			free(s->mem); /* the runs hold everything now */
			s->mem = NULL;
		}
	}
	s->mem_pos = 0;
	if (s->nruns == 0)
		return 0;
	free(s->heap);
	s->heap = mqtx_xcalloc(s->nruns, sizeof(size_t));
	s->nheap = 0;
	int failed = 0;
	for (size_t r = 0; r < s->nruns; r++) {
		struct run *ru = &s->runs[r];
		if (fseek(ru->f, 0, SEEK_SET) != 0)
			return mqtx_err_set(err, MQTX_E_IO, "cannot rewind a temporary file: %s", strerror(errno));
		if (ru->buf == NULL)
			ru->buf = mqtx_xmalloc(RUN_BUF);
		ru->have = ru->pos = 0;
		ru->done = false;
		if (fill(s, r, err, &failed))
			s->heap[s->nheap++] = r;
		else if (failed)
			return -1;
	}
	for (size_t i = s->nheap; i-- > 0;)
		sift_down(s, i);
	return 0;
}

const void *audit_sorter_next(struct audit_sorter *s, void *out, struct mqtx_err *err, int *failed)
{
	*failed = 0;
	if (s->nruns == 0) {
		if (s->mem_pos >= s->n)
			return NULL;
		memcpy(out, s->mem + s->mem_pos * s->rec, s->rec);
		s->mem_pos++;
		return out;
	}
	if (s->nheap == 0)
		return NULL;
	size_t r = s->heap[0];
	memcpy(out, head(s, r), s->rec);
	s->runs[r].pos += s->rec;
	if (fill(s, r, err, failed)) {
		sift_down(s, 0);
	} else {
		if (*failed)
			return NULL;
		s->heap[0] = s->heap[--s->nheap];
		if (s->nheap > 0)
			sift_down(s, 0);
	}
	return out;
}

void audit_sorter_free(struct audit_sorter *s)
{
	if (s == NULL)
		return;
	for (size_t r = 0; r < s->nruns; r++) {
		fclose(s->runs[r].f);
		free(s->runs[r].buf);
	}
	free(s->runs);
	free(s->heap);
	free(s->mem);
	free(s);
}
