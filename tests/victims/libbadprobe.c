/*
 * libbadprobe.c: a payload that cannot load: it needs a symbol no process
 * has, so dlopen(RTLD_NOW) fails in the target and the injector must
 * report the target's dlerror() text.
 */
extern int pyhot_no_such_function(void);

__attribute__((visibility("default"))) int pyhot_boot(const char *arg);

int pyhot_boot(const char *arg)
{
	return pyhot_no_such_function();
}
