/* test_cli_format.c: agent responses as text (cli/format.c) and the
 * client's pure parts: frames, socket path, euid, error mapping (cli/client.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json.h>

#include "cli.h"
#include "client.h"
#include "pyhot_proto.h"

static struct json_object *parse(const char *s)
{
	struct json_object *o = pyhot_client_resp_parse(s, strlen(s));

	assert_non_null(o);
	return o;
}

static char *capture_refresh(struct json_object *resp, int verbose)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	cli_fmt_refresh(f, resp, 4242, verbose, 0);
	fclose(f);
	return text;
}

static const char refresh_ok[] =
	"{\"proto\":1,\"ok\":true,\"modules\":[{\"module\":\"app.views\",\"file\":\"/srv/app/views.py\","
	"\"changes\":[{\"action\":\"changed\",\"kind\":\"function\",\"name\":\"app.views.index\","
	"\"detail\":\"code, defaults\"},{\"action\":\"added\",\"kind\":\"function\","
	"\"name\":\"app.views.health\",\"detail\":\"\"},{\"action\":\"kept\",\"kind\":\"value\","
	"\"name\":\"app.views.COUNT\"}],\"summary\":{\"changed\":1,\"added\":1,\"removed\":0,"
	"\"kept\":1,\"failed\":0}}],\"dry_run\":false}";

static void test_refresh_lines(void **state)
{
	struct json_object *r = parse(refresh_ok);
	char *t = capture_refresh(r, 0);

	assert_non_null(strstr(t, "app.views (/srv/app/views.py)\n"));
	assert_non_null(strstr(t, "  changed  function  app.views.index (code, defaults)\n"));
	assert_non_null(strstr(t, "  added    function  app.views.health\n"));
	assert_null(strstr(t, "COUNT"));   /* kept: only with -v */
	assert_non_null(strstr(t, "refreshed 1 module in pid 4242: 1 changed, 1 added, "
				  "0 removed, 1 kept, 0 failed\n"));
	free(t);
	t = capture_refresh(r, 1);
	assert_non_null(strstr(t, "  kept     value     app.views.COUNT\n"));
	free(t);
	json_object_put(r);
}

static void test_refresh_dry_run_and_empty(void **state)
{
	struct json_object *r = parse("{\"proto\":1,\"ok\":true,\"modules\":[],\"dry_run\":true}");
	char *t = capture_refresh(r, 0);

	assert_non_null(strstr(t, "dry run, pid 4242: no module changed"));
	free(t);
	json_object_put(r);
	r = parse("{\"ok\":true,\"dry_run\":true,\"modules\":[{\"module\":\"m\",\"changes\":[],"
		  "\"warning\":\"no baseline\","
		  "\"summary\":{\"changed\":2}}]}");
	t = capture_refresh(r, 0);
	assert_non_null(strstr(t, "would refresh 1 module in pid 4242: 2 changed"));
	assert_non_null(strstr(t, "(dry run: nothing was changed)"));
	assert_non_null(strstr(t, "m\n  warning: no baseline\n"));
	free(t);
	json_object_put(r);
}

/* Two modules: the process-wide on_refresh callback is in both lists (it
 * ran once) and is shown under the first only; a raise says the refresh
 * stays applied, without the engine's "refresh: " step prefix. */
static const char refresh_hooks[] =
	"{\"ok\":true,\"dry_run\":false,\"modules\":["
	"{\"module\":\"a\",\"changes\":[],\"summary\":{\"changed\":1},\"hooks\":["
	"{\"name\":\"__pyhot_before_refresh__\",\"ok\":true},"
	"{\"name\":\"__pyhot_after_refresh__\",\"ok\":false,"
	"\"error\":\"refresh: /src/a.py:6: KeyError: 'late'\"},"
	"{\"name\":\"on_refresh:app.notify\",\"ok\":true}]},"
	"{\"module\":\"b\",\"changes\":[],\"summary\":{\"changed\":1},\"hooks\":["
	"{\"name\":\"on_class_update:app.seen\",\"ok\":false,\"error\":\"ValueError: x\"},"
	"{\"name\":\"on_refresh:app.notify\",\"ok\":true}]}]}";

static int count_of(const char *text, const char *what)
{
	int n = 0;

	for (; (text = strstr(text, what)) != NULL; text += strlen(what))
		n++;
	return n;
}

static void test_refresh_hook_lines(void **state)
{
	struct json_object *r = parse(refresh_hooks);
	char *t = capture_refresh(r, 0);

	assert_non_null(strstr(t, "a\n  hook     __pyhot_before_refresh__: ok\n"
				  "  hook     __pyhot_after_refresh__: raised /src/a.py:6: KeyError: "
				  "'late' (the refresh stays applied; pyhot rollback undoes it)\n"
				  "  hook     on_refresh:app.notify: ok\nb\n"));
	assert_non_null(strstr(t, "b\n  hook     on_class_update:app.seen: raised ValueError: x "
				  "(the refresh stays applied; pyhot rollback undoes it)\nrefreshed"));
	assert_int_equal(count_of(t, "on_refresh"), 1);
	free(t);
	json_object_put(r);
}

static void test_change_line_color(void **state)
{
	struct json_object *c = parse("{\"action\":\"failed\",\"kind\":\"class\",\"name\":\"m.C\"}");
	char line[256];

	cli_fmt_change(line, sizeof(line), c, 1);
	assert_non_null(strstr(line, "\033[31mfailed"));
	cli_fmt_change(line, sizeof(line), c, 0);
	assert_null(strchr(line, '\033'));
	json_object_put(c);
}

static void test_status_known_and_unknown_fields(void **state)
{
	struct json_object *r = parse(
		"{\"proto\":1,\"ok\":true,\"interpreter\":{\"version\":\"3.11.7 (main, Jan 1 2024)\","
		"\"implementation\":\"cpython\",\"executable\":\"/usr/bin/python3.11\","
		"\"build\":\"shared\",\"libpython\":\"/lib/libpython3.11.so.1.0\"},"
		"\"main_thread\":{\"via\":\"gil-thread\",\"frame\":{\"file\":\"app.py\",\"line\":12,"
		"\"function\":\"loop\"}},\"threads\":2,\"agent\":{\"uptime_s\":1.5,\"requests\":3,"
		"\"os_threads\":4,\"via_pending_call\":1,\"via_gil_thread\":2,\"timeouts\":0,"
		"\"refused\":0,\"engine\":true,\"socket\":\"/tmp/pyhot-0/agent-9.sock\","
		"\"last_error\":null},\"safepoint\":{\"via\":\"gil-thread\",\"wait_ms\":100.2,"
		"\"run_ms\":0.4},\"tb\":\"line1\\nline2\",\"list\":[1,2]}");
	char *text = NULL, ver[32];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	cli_fmt_status(f, r, 99);
	fclose(f);
	assert_non_null(strstr(text, "pid 99: CPython 3.11.7 (shared libpython "
				     "/lib/libpython3.11.so.1.0)\n"));
	assert_non_null(strstr(text, "  main thread:  in loop at app.py:12\n"));
	assert_non_null(strstr(text, "  safe point:   reached through the agent's thread"));
	assert_non_null(strstr(text, "in 100.2 ms"));
	assert_non_null(strstr(text, "  threads:      2 Python, 4 OS\n"));
	assert_non_null(strstr(text, "  requests:     3 (1 by pending call, 2 by GIL thread)"));
	assert_non_null(strstr(text, "  patch engine: yes\n"));
	/* Fields this CLI does not know are still shown. */
	assert_non_null(strstr(text, "  tb:\n    line1\n    line2\n"));
	assert_non_null(strstr(text, "  list: 1, 2\n"));
	assert_null(strstr(text, "proto"));
	free(text);
	cli_fmt_version(ver, sizeof(ver), r, NULL);
	assert_string_equal(ver, "3.11.7");
	json_object_put(r);
}

static void test_version_fallbacks(void **state)
{
	struct pyhot_target t;
	struct json_object *r = parse("{\"ok\":true,\"python_version\":\"3.13.0\"}");
	char ver[32];

	memset(&t, 0, sizeof(t));
	t.py_major = 3;
	t.py_minor = 9;
	cli_fmt_version(ver, sizeof(ver), r, &t);
	assert_string_equal(ver, "3.13.0");
	cli_fmt_version(ver, sizeof(ver), NULL, &t);
	assert_string_equal(ver, "3.9");
	t.py_minor = -1;
	cli_fmt_version(ver, sizeof(ver), NULL, &t);
	assert_string_equal(ver, "3.x");
	json_object_put(r);
}

static void test_frame_encoding(void **state)
{
	struct pyhot_client_req r;
	unsigned char *buf;
	size_t len;
	static const char want[] = "refresh\0module\0a.b\0module\0c\0dry_run\0" "1";

	pyhot_client_req_init(&r, "refresh");
	assert_int_equal(pyhot_client_req_add(&r, "module", "a.b"), 0);
	assert_int_equal(pyhot_client_req_add(&r, "module", "c"), 0);
	assert_int_equal(pyhot_client_req_add(&r, "dry_run", "1"), 0);
	assert_int_equal(pyhot_client_req_encode(&r, &buf, &len), 0);
	assert_int_equal(len, 4 + sizeof(want));
	assert_int_equal(pyhot_frame_len_decode(buf), sizeof(want));
	assert_memory_equal(buf + 4, want, sizeof(want));
	free(buf);
}

static void test_sock_path_and_euid(void **state)
{
	char p[128];
	unsigned int euid = 0;

	assert_int_equal(pyhot_client_sock_path(p, sizeof(p), 1000, 42), 0);
	assert_string_equal(p, "/tmp/pyhot-1000/agent-42.sock");
	assert_int_equal(pyhot_client_sock_path(p, 10, 1000, 42), -1);
	assert_int_equal(pyhot_client_parse_euid("Name:\tpython3\nUid:\t1000\t0\t0\t0\n", &euid), 0);
	assert_int_equal(euid, 0);
	assert_int_equal(pyhot_client_parse_euid("Name:\tx\n", &euid), -1);
}

static void test_resp_check(void **state)
{
	struct json_object *r;
	struct pyhot_err e;

	r = parse("{\"proto\":1,\"ok\":true}");
	pyhot_err_init(&e);
	assert_int_equal(pyhot_client_resp_check(r, 5, "status", &e), 0);
	json_object_put(r);

	r = parse("{\"proto\":1,\"ok\":false,\"error\":{\"kind\":\"timeout\",\"step\":\"safe point\","
		  "\"message\":\"safe point: not reached in 5000 ms\"}}");
	pyhot_err_init(&e);
	assert_int_equal(pyhot_client_resp_check(r, 5, "status", &e), -PYHOT_ERR_TIMEOUT);
	assert_string_equal(e.msg, "safe point: not reached in 5000 ms");
	assert_int_equal(e.pid, 5);
	json_object_put(r);

	r = parse("{\"ok\":false,\"error\":{\"kind\":\"failed\",\"message\":\"app/views.py:3: "
		  "invalid syntax\"},\"traceback\":\"Traceback...\"}");
	pyhot_err_init(&e);
	assert_int_equal(pyhot_client_resp_check(r, 5, "refresh", &e), -PYHOT_ERR_FAILED);
	assert_string_equal(e.msg, "refresh: app/views.py:3: invalid syntax");
	json_object_put(r);

	r = parse("{\"ok\":false,\"error\":{\"kind\":\"uncertain\",\"message\":\"x\"}}");
	pyhot_err_init(&e);
	assert_int_equal(pyhot_client_resp_check(r, 5, "refresh", &e), -PYHOT_ERR_UNCERTAIN);
	json_object_put(r);

	assert_null(pyhot_client_resp_parse("[1,2]", 5));
	assert_null(pyhot_client_resp_parse("{\"a\":", 5));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refresh_lines),
		cmocka_unit_test(test_refresh_dry_run_and_empty),
		cmocka_unit_test(test_refresh_hook_lines),
		cmocka_unit_test(test_change_line_color),
		cmocka_unit_test(test_status_known_and_unknown_fields),
		cmocka_unit_test(test_version_fallbacks),
		cmocka_unit_test(test_frame_encoding),
		cmocka_unit_test(test_sock_path_and_euid),
		cmocka_unit_test(test_resp_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
