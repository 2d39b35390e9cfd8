/*
 * jsonw.h: a small JSON writer for the payload, which links nothing but libc.
 *
 * The writer appends to a growing buffer and tracks whether a comma is due.
 * Out of memory is sticky: every later call does nothing and jsonw_finish()
 * returns NULL. Keys and strings are escaped; invalid UTF-8 bytes are
 * written as U+FFFD.
 *
 *   struct jsonw w;
 *   jsonw_init(&w);
 *   jsonw_object_begin(&w);
 *   jsonw_key_str(&w, "module", "app.views");
 *   jsonw_key(&w, "changed"); jsonw_array_begin(&w); ... jsonw_array_end(&w);
 *   jsonw_object_end(&w);
 *   char *text = jsonw_finish(&w);  // caller frees; NULL when out of memory
 */
#ifndef PYHOT_JSONW_H
#define PYHOT_JSONW_H

#include <stddef.h>

struct jsonw {
	char *buf;
	size_t len, cap;
	int need_comma;   /* a value was written at this level */
	int failed;       /* out of memory: the output is lost */
};

void jsonw_init(struct jsonw *w);
void jsonw_release(struct jsonw *w);   /* frees the buffer, if not finished */
char *jsonw_finish(struct jsonw *w);   /* hands the text to the caller */

void jsonw_object_begin(struct jsonw *w);
void jsonw_object_end(struct jsonw *w);
void jsonw_array_begin(struct jsonw *w);
void jsonw_array_end(struct jsonw *w);

void jsonw_key(struct jsonw *w, const char *key);  /* next value belongs to it */
void jsonw_str(struct jsonw *w, const char *s);    /* NULL writes null */
void jsonw_strn(struct jsonw *w, const char *s, size_t n);
void jsonw_int(struct jsonw *w, long long v);
void jsonw_double(struct jsonw *w, double v);
void jsonw_bool(struct jsonw *w, int v);
void jsonw_null(struct jsonw *w);
/* Append already-serialised JSON (for example another jsonw's text). */
void jsonw_raw(struct jsonw *w, const char *json);

/* Shorthands: key followed by a value. */
void jsonw_key_str(struct jsonw *w, const char *key, const char *s);
void jsonw_key_int(struct jsonw *w, const char *key, long long v);
void jsonw_key_double(struct jsonw *w, const char *key, double v);
void jsonw_key_bool(struct jsonw *w, const char *key, int v);

#endif /* PYHOT_JSONW_H */
