/* test_payload_json.c: the payload's JSON writer (payload/jsonw.c). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsonw.h"

/* Write one string value and compare the whole output. */
static void check_str(const char *in, size_t n, const char *want)
{
	struct jsonw w;
	char *text;

	jsonw_init(&w);
	jsonw_strn(&w, in, n);
	text = jsonw_finish(&w);
	assert_non_null(text);
	assert_string_equal(text, want);
	free(text);
}

#define CHECK(in, want) check_str((in), sizeof(in) - 1, (want))

static void test_escapes(void **state)
{
	CHECK("plain", "\"plain\"");
	CHECK("a\"b\\c", "\"a\\\"b\\\\c\"");
	CHECK("\n\r\t", "\"\\n\\r\\t\"");
	CHECK("\x01\x1f", "\"\\u0001\\u001f\"");
	CHECK("nul\0in", "\"nul\\u0000in\"");
	CHECK("/ and \x7f", "\"/ and \x7f\"");
	CHECK("", "\"\"");
}

static void test_utf8_valid_passes_through(void **state)
{
	CHECK("caf\xc3\xa9", "\"caf\xc3\xa9\"");                  /* U+00E9 */
	CHECK("\xe2\x82\xac", "\"\xe2\x82\xac\"");                /* U+20AC */
	CHECK("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");        /* U+1F600 */
	CHECK("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\"");        /* U+10FFFF */
}

static void test_utf8_invalid_becomes_replacement(void **state)
{
	CHECK("\x80", "\"\\ufffd\"");                     /* lone continuation */
	CHECK("a\xc3", "\"a\\ufffd\"");                   /* truncated at the end */
	CHECK("\xc3(", "\"\\ufffd(\"");                   /* bad continuation */
	CHECK("\xc0\x80", "\"\\ufffd\\ufffd\"");          /* overlong NUL */
	CHECK("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""); /* overlong '/' */
	CHECK("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate D800 */
	CHECK("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
	CHECK("\xff\xfe", "\"\\ufffd\\ufffd\"");
	/* A file name with a surrogate-escaped byte still gives valid JSON. */
	CHECK("/srv/app/\xe9t\xc3\xa9.py", "\"/srv/app/\\ufffdt\xc3\xa9.py\"");
}

static void test_nesting_and_commas(void **state)
{
	struct jsonw w;
	char *text;

	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_key_int(&w, "proto", 1);
	jsonw_key(&w, "list");
	jsonw_array_begin(&w);
	jsonw_int(&w, -7);
	jsonw_str(&w, NULL);
	jsonw_bool(&w, 0);
	jsonw_array_begin(&w);
	jsonw_array_end(&w);
	jsonw_object_begin(&w);
	jsonw_key_str(&w, "k\"ey", "v");
	jsonw_object_end(&w);
	jsonw_array_end(&w);
	jsonw_key(&w, "empty");
	jsonw_object_begin(&w);
	jsonw_object_end(&w);
	jsonw_key_double(&w, "half", 0.5);
	jsonw_key_double(&w, "nan", NAN);
	jsonw_key_double(&w, "inf", INFINITY);
	jsonw_key_bool(&w, "ok", 1);
	jsonw_key(&w, "raw");
	jsonw_raw(&w, "{\"a\":[1]}");
	jsonw_key(&w, "n");
	jsonw_null(&w);
	jsonw_object_end(&w);
	text = jsonw_finish(&w);
	assert_non_null(text);
	assert_string_equal(text,
		"{\"proto\":1,\"list\":[-7,null,false,[],{\"k\\\"ey\":\"v\"}],"
		"\"empty\":{},\"half\":0.5,\"nan\":null,\"inf\":null,\"ok\":true,"
		"\"raw\":{\"a\":[1]},\"n\":null}");
	free(text);
}

/* The agent appends a handler's fields (no braces) with jsonw_raw. */
static void test_fields_fragment(void **state)
{
	struct jsonw f, w;
	char *fields, *text;

	jsonw_init(&f);
	jsonw_key_int(&f, "a", 1);
	jsonw_key_str(&f, "b", "x");
	fields = jsonw_finish(&f);
	assert_string_equal(fields, "\"a\":1,\"b\":\"x\"");

	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_key_int(&w, "proto", 1);
	jsonw_raw(&w, fields);
	jsonw_key_bool(&w, "ok", 1);
	jsonw_object_end(&w);
	text = jsonw_finish(&w);
	assert_string_equal(text, "{\"proto\":1,\"a\":1,\"b\":\"x\",\"ok\":true}");
	free(text);
	free(fields);
}

static void test_empty_and_large(void **state)
{
	struct jsonw w;
	char *text, *big;
	size_t n = 100000, i;

	jsonw_init(&w);
	text = jsonw_finish(&w);
	assert_non_null(text);
	assert_string_equal(text, "");
	free(text);

	/* Grows past the first buffer many times; every byte escaped. */
	big = malloc(n);
	assert_non_null(big);
	memset(big, '"', n);
	jsonw_init(&w);
	jsonw_strn(&w, big, n);
	text = jsonw_finish(&w);
	assert_non_null(text);
	assert_int_equal(strlen(text), 2 * n + 2);
	for (i = 1; i < 2 * n + 1; i += 2) {
		assert_int_equal(text[i], '\\');
	}
	free(text);
	free(big);

	/* release() frees an unfinished writer. */
	jsonw_init(&w);
	jsonw_str(&w, "x");
	jsonw_release(&w);
	assert_null(w.buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_utf8_valid_passes_through),
		cmocka_unit_test(test_utf8_invalid_becomes_replacement),
		cmocka_unit_test(test_nesting_and_commas),
		cmocka_unit_test(test_fields_fragment),
		cmocka_unit_test(test_empty_and_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
