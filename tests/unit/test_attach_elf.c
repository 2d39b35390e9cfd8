/*
 * test_attach_elf.c: the ELF helpers against this machine's real libc and
 * libcmocka, checked against what the dynamic loader says about the same
 * symbols in this very process (load bias from /proc/self/maps, as the
 * injector computes it for a target).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attach_int.h"

/* The mapping at file offset 0 of the object whose basename starts with
 * base (maps shows the file behind the soname link: libcmocka.so.0.8.0). */
static int self_map(const char *base, struct attach_map *out, char **text)
{
	const char *cur;
	struct attach_map m;
	char b[256];
	size_t len;
	int r;

	assert_int_equal(attach_read_file("/proc/self/maps", text, &len), 0);
	cur = *text;
	while ((r = attach_maps_next(&cur, &m)) != 0) {
		if (r < 0 || !m.pathlen || m.offset != 0)
			continue;
		attach_map_basename(&m, b, sizeof(b));
		if (strncmp(b, base, strlen(base)) == 0) {
			*out = m;
			return 0;
		}
	}
	return -1;
}

/* What the loader says the object itself defines: dlsym on its own handle,
 * so that an interposer (a sanitizer's malloc) does not answer instead. */
static void *loader_says(const char *soname, const char *name)
{
	void *h = dlopen(soname, RTLD_NOW | RTLD_NOLOAD);
	void *p;

	assert_non_null(h);
	p = dlsym(h, name);
	dlclose(h);
	return p;
}

static void check_symbols(const char *base, const char *soname,
			  const char *const *names, size_t n)
{
	struct attach_elf *e = NULL;
	struct attach_map m;
	struct pyhot_err err;
	unsigned long v, sz, bias;
	char *text = NULL;
	size_t i;

	assert_int_equal(self_map(base, &m, &text), 0);
	pyhot_err_init(&err);
	/* Through /proc/PID/root, as for a target in another mount namespace. */
	assert_int_equal(attach_elf_open_mapped(getpid(), &m, &e, &err), 0);
	bias = m.start - attach_elf_first_load(e);
	for (i = 0; i < n; i++) {
		void *want = loader_says(soname, names[i]);

		assert_non_null(want);
		if (attach_elf_lookup(e, names[i], &v, &sz) != 0)
			fail_msg("%s: no symbol %s", base, names[i]);
		if (bias + v != (unsigned long)want)
			fail_msg("%s: %s at 0x%lx, the loader says %p", base, names[i],
				 bias + v, want);
		assert_true(sz > 0);
	}
	assert_int_equal(attach_elf_lookup(e, "no_such_symbol_pyhot", &v, &sz), -1);
	attach_elf_close(e);
	free(text);
}

static void test_libc_symbols(void **state)
{
	/* realpath has two versions with different code (@GLIBC_2.2.5 and
	 * @@GLIBC_2.3): the lookup must give the default one, as dlsym does. */
	static const char *const names[] = {
		"dlopen", "dlsym", "dlerror", "memfd_create", "close", "malloc", "free",
		"calloc", "realloc", "posix_memalign", "pthread_create", "__errno_location",
		"realpath", "fork",
	};

	check_symbols("libc.so.6", "libc.so.6", names, sizeof(names) / sizeof(names[0]));
}

/* Every function libc exports by default, looked up through its hash
 * table (the bucket chains of 3000 names), lands where dlsym says. */
static void test_every_libc_function(void **state)
{
	struct attach_elf *e = NULL;
	struct attach_map m;
	struct pyhot_err err;
	unsigned long v, sz, bias;
	char *text = NULL;
	Elf *elf;
	Elf_Scn *scn = NULL, *dynsym = NULL, *versym = NULL;
	Elf_Data *data, *vdata;
	GElf_Shdr sh, dsh;
	GElf_Sym sym;
	GElf_Versym vs;
	void *h;
	size_t i, n, checked = 0;
	int fd;

	assert_int_equal(self_map("libc.so.6", &m, &text), 0);
	pyhot_err_init(&err);
	assert_int_equal(attach_elf_open_mapped(getpid(), &m, &e, &err), 0);
	bias = m.start - attach_elf_first_load(e);
	{
		char *path = strndup(m.path, m.pathlen);

		assert_non_null(path);
		fd = open(path, O_RDONLY);
		free(path);
	}
	assert_true(fd >= 0);
	elf = elf_begin(fd, ELF_C_READ, NULL);
	assert_non_null(elf);
	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		assert_non_null(gelf_getshdr(scn, &sh));
		if (sh.sh_type == SHT_DYNSYM)
			dynsym = scn;
		else if (sh.sh_type == SHT_GNU_versym)
			versym = scn;
	}
	assert_non_null(dynsym);
	assert_non_null(versym);
	assert_non_null(gelf_getshdr(dynsym, &dsh));
	data = elf_getdata(dynsym, NULL);
	vdata = elf_getdata(versym, NULL);
	h = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	assert_non_null(h);
	n = dsh.sh_size / dsh.sh_entsize;
	for (i = 1; i < n; i++) {
		const char *name;
		void *want;

		assert_non_null(gelf_getsym(data, (int)i, &sym));
		assert_non_null(gelf_getversym(vdata, (int)i, &vs));
		if (sym.st_shndx == SHN_UNDEF || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
		    GELF_ST_BIND(sym.st_info) == STB_LOCAL || (vs & 0x8000))
			continue;
		name = elf_strptr(elf, dsh.sh_link, sym.st_name);
		want = name ? dlsym(h, name) : NULL;
		if (!want)
			continue;
		if (attach_elf_lookup(e, name, &v, &sz) != 0)
			fail_msg("libc: no symbol %s", name);
		if (bias + v != (unsigned long)want)
			fail_msg("libc: %s at 0x%lx, the loader says %p", name, bias + v, want);
		checked++;
	}
	/* This machine's libc exports well over a thousand functions. */
	assert_true(checked > 1000);
	dlclose(h);
	elf_end(elf);
	close(fd);
	attach_elf_close(e);
	free(text);
}

static void test_small_library(void **state)
{
	static const char *const names[] = { "_cmocka_run_group_tests", "_assert_true" };

	check_symbols("libcmocka.so.0", "libcmocka.so.0", names,
		      sizeof(names) / sizeof(names[0]));
}

static void test_malloc_range(void **state)
{
	struct attach_elf *e = NULL;
	struct attach_map m;
	struct pyhot_err err;
	unsigned long v, sz, bias, ip;
	char *text = NULL;

	assert_int_equal(self_map("libc.so.6", &m, &text), 0);
	pyhot_err_init(&err);
	assert_int_equal(attach_elf_open_mapped(getpid(), &m, &e, &err), 0);
	bias = m.start - attach_elf_first_load(e);
	assert_int_equal(attach_elf_lookup(e, "malloc", &v, &sz), 0);
	/* The code of malloc lies in [st_value, st_value + st_size). */
	ip = (unsigned long)loader_says("libc.so.6", "malloc");
	assert_true(ip >= bias + v && ip < bias + v + sz);
	assert_true(sz > 16);
	attach_elf_close(e);
	free(text);
}

/* The function holding an address, never the nearest symbol below it. */
static void test_func_at(void **state)
{
	struct attach_elf *e = NULL;
	struct attach_map m;
	struct pyhot_err err;
	unsigned long v, sz, start = 0;
	const char *name;
	char *text = NULL;

	assert_int_equal(self_map("libc.so.6", &m, &text), 0);
	pyhot_err_init(&err);
	assert_int_equal(attach_elf_open_mapped(getpid(), &m, &e, &err), 0);
	assert_int_equal(attach_elf_lookup(e, "malloc", &v, &sz), 0);
	name = attach_elf_func_at(e, v + sz / 2, &start);
	assert_non_null(name);
	assert_int_equal(start, v);         /* malloc, or an alias of it */
	/* The ELF header is in no function. */
	assert_null(attach_elf_func_at(e, attach_elf_first_load(e), &start));
	attach_elf_close(e);
	free(text);
}

static void test_build_id(void **state)
{
	struct attach_elf *e = NULL;
	struct attach_map m;
	struct pyhot_err err;
	unsigned char id[64];
	char *text = NULL, probe[512];
	const char *dir = getenv("PYHOT_VICTIMS");
	unsigned long v, sz;

	assert_int_equal(self_map("libc.so.6", &m, &text), 0);
	pyhot_err_init(&err);
	assert_int_equal(attach_elf_open_mapped(getpid(), &m, &e, &err), 0);
	assert_int_equal(attach_elf_build_id(e, id, sizeof(id)), 20);
	attach_elf_close(e);
	free(text);

	/* The probe payload, when the victims are built. */
	snprintf(probe, sizeof(probe), "%s/libprobe.so", dir ? dir : "build/tests/victims");
	if (access(probe, R_OK) != 0)
		return;
	assert_int_equal(attach_elf_open(probe, &e, 0, &err), 0);
	assert_int_equal(attach_elf_lookup(e, "pyhot_boot", &v, &sz), 0);
	assert_true(v > 0 && sz > 0);
	assert_true(attach_elf_build_id(e, id, sizeof(id)) > 0);
	assert_int_equal(attach_elf_first_load(e), 0);
	attach_elf_close(e);
}

static void test_open_errors(void **state)
{
	struct attach_elf *e = NULL;
	struct pyhot_err err;

	pyhot_err_init(&err);
	assert_int_equal(attach_elf_open("/nonexistent/libc.so.6", &e, 4242, &err),
			 -PYHOT_ERR_ATTACH);
	assert_null(e);
	assert_string_equal(err.msg, "elf: open('/nonexistent/libc.so.6'): no such file "
			    "or directory");
	assert_int_equal(err.sys_errno, ENOENT);
	assert_int_equal(err.pid, 4242);

	pyhot_err_init(&err);
	assert_int_equal(attach_elf_open("/etc/passwd", &e, 0, &err), -PYHOT_ERR_ATTACH);
	assert_non_null(strstr(err.msg, "elf: read('/etc/passwd'): not an ELF file"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_libc_symbols),
		cmocka_unit_test(test_every_libc_function),
		cmocka_unit_test(test_small_library),
		cmocka_unit_test(test_malloc_range),
		cmocka_unit_test(test_func_at),
		cmocka_unit_test(test_build_id),
		cmocka_unit_test(test_open_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
