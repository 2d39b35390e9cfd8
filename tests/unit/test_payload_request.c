/* test_payload_request.c: decoding request frames (payload/request.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pyhot_proto.h"
#include "request.h"

/* Parse a literal (which may hold NULs) from a writable copy. */
static int parse(struct pyhot_req *r, char *copy, const char *frame, size_t len)
{
	memcpy(copy, frame, len);
	return pyhot_req_parse(r, copy, len);
}

#define PARSE(r, buf, lit) parse((r), (buf), (lit), sizeof(lit) - 1)

static void test_verb_only(void **state)
{
	struct pyhot_req r;
	char buf[64];

	assert_int_equal(PARSE(&r, buf, "ping\0"), 0);
	assert_string_equal(r.verb, "ping");
	assert_int_equal(r.nargs, 0);
	assert_null(pyhot_req_get(&r, "timeout_ms"));
	assert_int_equal(pyhot_req_get_ulong(&r, "timeout_ms", 5000), 5000);
}

static void test_arguments_and_repeats(void **state)
{
	struct pyhot_req r;
	char buf[128];

	assert_int_equal(PARSE(&r, buf, "refresh\0module\0app.a\0timeout_ms\0" "250\0"
			       "module\0app.b\0empty\0\0"), 0);
	assert_string_equal(r.verb, "refresh");
	assert_int_equal(r.nargs, 4);
	assert_int_equal(pyhot_req_count(&r, "module"), 2);
	assert_string_equal(pyhot_req_nth(&r, "module", 0), "app.a");
	assert_string_equal(pyhot_req_nth(&r, "module", 1), "app.b");
	assert_null(pyhot_req_nth(&r, "module", 2));
	assert_string_equal(pyhot_req_get(&r, "module"), "app.a");
	assert_int_equal(pyhot_req_get_ulong(&r, "timeout_ms", 5000), 250);
	assert_string_equal(pyhot_req_get(&r, "empty"), "");
	assert_int_equal(pyhot_req_count(&r, "absent"), 0);
}

static void test_numbers(void **state)
{
	struct pyhot_req r;
	char buf[128];

	assert_int_equal(PARSE(&r, buf, "status\0a\0-3\0b\0x\0c\0" "12x\0d\0\0e\0 7\0"), 0);
	assert_int_equal(pyhot_req_get_ulong(&r, "a", 1), -1);
	assert_int_equal(pyhot_req_get_ulong(&r, "b", 1), -1);
	assert_int_equal(pyhot_req_get_ulong(&r, "c", 1), -1);
	assert_int_equal(pyhot_req_get_ulong(&r, "d", 1), -1);
	/* strtol skips leading blanks; harmless, documented here. */
	assert_int_equal(pyhot_req_get_ulong(&r, "e", 1), 7);
	assert_int_equal(PARSE(&r, buf, "status\0n\0" "99999999999999999999999\0"), 0);
	assert_int_equal(pyhot_req_get_ulong(&r, "n", 1), -1);   /* overflow */
}

static void test_malformed_frames(void **state)
{
	struct pyhot_req r;
	char buf[64];

	assert_int_equal(pyhot_req_parse(&r, buf, 0), -1);            /* empty */
	assert_int_equal(PARSE(&r, buf, "ping"), -1);                 /* no final NUL */
	assert_int_equal(PARSE(&r, buf, "\0"), -1);                   /* empty verb */
	assert_int_equal(PARSE(&r, buf, "\0key\0val\0"), -1);         /* empty verb */
	assert_int_equal(PARSE(&r, buf, "ping\0key\0"), -1);          /* key, no value */
	assert_int_equal(PARSE(&r, buf, "ping\0k\0v\0k2"), -1);       /* cut short */
	assert_int_equal(PARSE(&r, buf, "ping\0\0"), -1);             /* empty key, no value */
	/* A failed parse leaves no dangling verb behind. */
	assert_null(r.verb);
	assert_int_equal(r.nargs, 0);
}

static void test_argument_limit(void **state)
{
	struct pyhot_req r;
	size_t n = 0, i, cap = 8 + 4 * (PYHOT_REQ_MAX_ARGS + 1) + 1;
	char *buf = malloc(cap);

	assert_non_null(buf);
	memcpy(buf, "ping", 5);
	n = 5;
	for (i = 0; i < PYHOT_REQ_MAX_ARGS; i++) {
		memcpy(buf + n, "k\0v", 4);
		n += 4;
	}
	assert_int_equal(pyhot_req_parse(&r, buf, n), 0);
	assert_int_equal(r.nargs, PYHOT_REQ_MAX_ARGS);
	memcpy(buf + n, "k\0v", 4);   /* one argument too many */
	n += 4;
	assert_int_equal(pyhot_req_parse(&r, buf, n), -1);
	free(buf);
}

static void test_frame_length_codec(void **state)
{
	unsigned char b[4];

	pyhot_frame_len_encode(b, 0x01020304u);
	assert_int_equal(b[0], 4);
	assert_int_equal(b[3], 1);
	assert_int_equal(pyhot_frame_len_decode(b), 0x01020304u);
	pyhot_frame_len_encode(b, PYHOT_FRAME_MAX);
	assert_int_equal(pyhot_frame_len_decode(b), PYHOT_FRAME_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verb_only),
		cmocka_unit_test(test_arguments_and_repeats),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_malformed_frames),
		cmocka_unit_test(test_argument_limit),
		cmocka_unit_test(test_frame_length_codec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
