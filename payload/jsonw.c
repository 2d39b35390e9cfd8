/* jsonw.c: the payload's JSON writer (see jsonw.h). */
#include "jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jsonw_init(struct jsonw *w)
{
	memset(w, 0, sizeof(*w));
}

void jsonw_release(struct jsonw *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

char *jsonw_finish(struct jsonw *w)
{
	char *text = w->failed ? NULL : w->buf;

	if (w->failed)
		free(w->buf);
	else if (!text)
		text = strdup("");
	memset(w, 0, sizeof(*w));
	return text;
}

static void put(struct jsonw *w, const char *s, size_t n)
{
	if (w->failed)
		return;
	if (w->len + n + 1 > w->cap) {
		size_t cap = w->cap ? w->cap : 256;
		char *nb;

		while (w->len + n + 1 > cap)
			cap *= 2;
		nb = realloc(w->buf, cap);
		if (!nb) {
			w->failed = 1;
			return;
		}
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void puts_(struct jsonw *w, const char *s)
{
	put(w, s, strlen(s));
}

/* Called before every value or key: writes the comma that separates it. */
static void sep(struct jsonw *w)
{
	if (w->need_comma)
		put(w, ",", 1);
	w->need_comma = 1;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned int cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are invalid. */
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static void put_escaped(struct jsonw *w, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run = 0;
	char esc[8];

	put(w, "\"", 1);
	while (i < n) {
		unsigned char c = s[i];
		size_t seq;

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			run++;
			continue;
		}
		put(w, (const char *)s + i - run, run);
		run = 0;
		switch (c) {
		case '"':  puts_(w, "\\\""); i++; continue;
		case '\\': puts_(w, "\\\\"); i++; continue;
		case '\n': puts_(w, "\\n"); i++; continue;
		case '\r': puts_(w, "\\r"); i++; continue;
		case '\t': puts_(w, "\\t"); i++; continue;
		default: break;
		}
		if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			puts_(w, esc);
			i++;
			continue;
		}
		seq = utf8_seq(s + i, n - i);
		if (seq) {
			put(w, (const char *)s + i, seq);
			i += seq;
		} else {
			puts_(w, "\\ufffd");
			i++;
		}
	}
	put(w, (const char *)s + i - run, run);
	put(w, "\"", 1);
}

void jsonw_object_begin(struct jsonw *w)
{
	sep(w);
	put(w, "{", 1);
	w->need_comma = 0;
}

void jsonw_object_end(struct jsonw *w)
{
	put(w, "}", 1);
	w->need_comma = 1;
}

void jsonw_array_begin(struct jsonw *w)
{
	sep(w);
	put(w, "[", 1);
	w->need_comma = 0;
}

void jsonw_array_end(struct jsonw *w)
{
	put(w, "]", 1);
	w->need_comma = 1;
}

void jsonw_key(struct jsonw *w, const char *key)
{
	sep(w);
	put_escaped(w, key, strlen(key));
	put(w, ":", 1);
	w->need_comma = 0;
}

void jsonw_strn(struct jsonw *w, const char *s, size_t n)
{
	sep(w);
	put_escaped(w, s, n);
}

void jsonw_str(struct jsonw *w, const char *s)
{
	if (!s) {
		jsonw_null(w);
		return;
	}
	jsonw_strn(w, s, strlen(s));
}

void jsonw_int(struct jsonw *w, long long v)
{
	char num[32];

	sep(w);
	snprintf(num, sizeof(num), "%lld", v);
	puts_(w, num);
}

void jsonw_double(struct jsonw *w, double v)
{
	char num[40];

	sep(w);
	if (!isfinite(v)) {
		puts_(w, "null");   /* JSON has no NaN or infinity */
		return;
	}
	snprintf(num, sizeof(num), "%.17g", v);
	puts_(w, num);
}

void jsonw_bool(struct jsonw *w, int v)
{
	sep(w);
	puts_(w, v ? "true" : "false");
}

void jsonw_null(struct jsonw *w)
{
	sep(w);
	puts_(w, "null");
}

void jsonw_raw(struct jsonw *w, const char *json)
{
	sep(w);
	puts_(w, json);
}

void jsonw_key_str(struct jsonw *w, const char *key, const char *s)
{
	jsonw_key(w, key);
	jsonw_str(w, s);
}

void jsonw_key_int(struct jsonw *w, const char *key, long long v)
{
	jsonw_key(w, key);
	jsonw_int(w, v);
}

void jsonw_key_double(struct jsonw *w, const char *key, double v)
{
	jsonw_key(w, key);
	jsonw_double(w, v);
}

void jsonw_key_bool(struct jsonw *w, const char *key, int v)
{
	jsonw_key(w, key);
	jsonw_bool(w, v);
}
