/*
 * pyhot_patch.h: the patch engine, which changes a running module in place.
 *
 * Every function here runs with the GIL held at a safe point (see verbs.h)
 * and never leaves a Python exception set. A refresh is all-or-nothing:
 * everything that runs Python (compiling, executing the new module body into
 * a scratch namespace, decorators, class bodies) happens first on new
 * objects; only then are the live objects changed, with plain C attribute
 * sets, in one go.
 *
 * Baseline: to know what changed, the engine needs the source each module
 * had when it was loaded. pyhot_patch_baseline_take() records it (in C
 * memory, so the target's heap does not grow) for every module loaded from a
 * `.py` file, read from disk at the agent's first safe point after attach;
 * modules imported later are recorded as their loader loads them
 * (import_watch.c). A successful refresh renews the baseline of every
 * module it patched; a failed one keeps it, so the next refresh compares
 * against what is really running.
 *
 * A baseline is trusted only when the file cannot have changed between
 * the import and the read (docs/engine.md). An untrusted one (a file
 * edited before the attach) is compared with what runs: functions and
 * classes whose live code differs from the file's are patched; statements
 * whose old text is unknown are not re-run (request key "rerun": "1" runs
 * them) and are reported "skipped".
 *
 * No baseline (its baseline file could not be parsed, or a loader pyhot
 * does not watch): the engine does not guess. It patches every
 * top-level def and class of the new source in place (patching an unchanged
 * function with its own code is harmless), runs a statement only when it
 * binds a name the module does not have yet, and never re-runs statements
 * that bind existing names or bind nothing (side effects): state is never
 * reset. The module's report then carries a "warning" field saying so, and
 * the refresh records a baseline for next time.
 *
 * Matching: top-level statements (and class-body statements) are compared
 * by ast.dump(), which ignores positions; an unchanged statement is not
 * re-run, even when it moved (its functions get code with the new line
 * numbers). docs/engine.md states how changed defs and classes are applied.
 *
 * Only the changed region is parsed: the baseline keeps, in C memory, a
 * table of its top-level statements (lines, kind, bound names); the lines
 * common to the start and the end of both texts delimit the region. The
 * first refresh of a module parses its baseline once to build the table.
 *
 * Limits (reported, never a crash):
 *   - closures made before the refresh that only the caller holds (not
 *     reachable from a user module's globals, classes, closure cells or
 *     __wrapped__ chains) keep their code: finding them would mean walking
 *     the heap; a closure whose free variables changed keeps its code;
 *   - a class whose bases, metaclass or class keywords, decorators or
 *     __slots__ changed gets a new class object bound to its name (the
 *     report says so; existing instances keep the old class); a dataclass
 *     whose fields changed keeps its class and gets the generated methods of
 *     a throwaway class made by the real statement (so that statement's
 *     __init_subclass__/metaclass do run once more);
 *   - an unchanged statement is not re-run even when a name it read
 *     changed (`B = [A * i ...]` keeps its value when only `A = ...`
 *     changed): state survives by design;
 *   - the apply phase runs no Python code of its own, but setting an
 *     attribute on a class whose metaclass defines __setattr__ in Python
 *     runs that code, and another thread may then run in between two sets.
 */
#ifndef PYHOT_PATCH_H
#define PYHOT_PATCH_H

#include "jsonw.h"
#include "pyhot_err.h"
#include "request.h"

/*
 * Verb "refresh". Request keys: "module" (repeatable; none: every module
 * with a baseline whose file changed since, or whose baseline is
 * untrusted), "dry_run" ("1": the plan without the apply: the report is the
 * one the refresh would give, made by the same code; new code runs on new
 * objects as in any plan, nothing live changes but what a changed statement
 * does beyond the names it binds), "rerun" ("1": statements of a module with
 * an untrusted baseline are re-run rather than skipped).
 *
 * Response fields written into the open object:
 *   "modules": [{"module", "file", "warning"?, "changes": [{"action":
 *       "changed|added|removed|kept|skipped|failed", "kind": "function|class|method|
 *       property|classmethod|staticmethod|value|import|statement", "name",
 *       "detail"}], "summary": {"changed", "added", "removed", "kept",
 *       "failed"}}],
 *   "dry_run": bool.
 * On failure returns -PYHOT_ERR_FAILED, err->msg is
 * "refresh: <file>:<line>: <exception type>: <message>" (or a plain
 * "refresh: module 'x' is not imported in pid N" and the like), a top-level
 * "traceback" string is written when Python raised, and nothing in the
 * target changed: not the module, not its classes, not the baseline.
 * All modules of one request are applied together or not at all.
 */
int pyhot_patch_refresh(const struct pyhot_req *req, struct jsonw *out,
			struct pyhot_err *err);

/*
 * Verb "rollback" (generation tracker, history.c). Request keys: "module"
 * (exactly one), "to" (a generation number of that module, or 0 for the
 * module as it was before every refresh still in the history; default: the
 * state before its newest refresh still applied), "dry_run".
 *
 * The inverse of every refresh newer than the target is applied in one go
 * (all-or-nothing, like a refresh): the objects those refreshes replaced
 * come back, those they added go, nothing is re-executed; state they kept
 * stays as it is now. The file on disk is not touched: a later refresh
 * applies it again. Response: "modules" (one report object, as refresh,
 * with "generation" the rollback's own number), "restored" (the generation
 * whose state is back; 0: as loaded), "undone" (numbers), "dry_run".
 */
int pyhot_patch_rollback(const struct pyhot_req *req, struct jsonw *out,
			 struct pyhot_err *err);

/*
 * Status fields of the generation tracker: "history": {"limit", "bytes",
 * "generations": [{"number", "time", "module", "kind": "refresh|rollback",
 * "hash", "restores"?, "applied", "rolled_back_by"?, "summary", "changes"}]}
 * newest first. With leaks, first runs gc.collect() and adds "leaks":
 * [{"generation", "type", "name", "held_by": [...]}]: objects that should
 * have died after a refresh or a rollback and are alive.
 */
int pyhot_patch_history_write(struct jsonw *out, int leaks,
			      struct pyhot_err *err);

/* Generations kept per module (boot key history=N; default
 * PYHOT_HISTORY_DEFAULT). Plain C, no GIL needed. */
#define PYHOT_HISTORY_DEFAULT 20
#define PYHOT_HISTORY_MAX 100000
void pyhot_patch_set_history_limit(long n);

/* Record the baseline source of every module loaded from a .py file not
 * recorded yet (standard library and site-packages too), and start
 * recording the modules imported from now on. GIL held on entry (released
 * while the files are read). What the in-process start uses. */
int pyhot_patch_baseline_take(struct pyhot_err *err);

/*
 * The same in four steps, so that the attach waits only for the user's own
 * files and the target's GIL is held only to list the modules
 * (baseline_scan.c says why the result is the same). One pass, in this
 * order, one step at a time:
 *   list: GIL held: the modules with a .py file and no baseline; the
 *         import watch starts. NULL (err set) or the pass;
 *   pin:  no GIL, any thread: each listed file's identity (stat);
 *   read: no GIL, any thread: each file's text, trusted only when the file
 *         kept its pinned identity and is older than the process; the
 *         user's files only (outside stdlib and site-packages) when
 *         user_only, and then the others by a second call;
 *   keep: GIL held: the texts become baselines (a module an import
 *         recorded meanwhile keeps that one); frees the pass.
 */
struct pyhot_baseline_pass;
struct pyhot_baseline_pass *pyhot_patch_baseline_list(struct pyhot_err *err);
void pyhot_patch_baseline_pin(struct pyhot_baseline_pass *p);
void pyhot_patch_baseline_read(struct pyhot_baseline_pass *p, int user_only);
int pyhot_patch_baseline_keep(struct pyhot_baseline_pass *p, struct pyhot_err *err);

/* Stop recording imports (the agent detaches). Any thread, no GIL: the
 * loader's originals go back at its next call. */
void pyhot_patch_watch_stop(void);

/* Status field "baselines": {"modules", "bytes", "untrusted"}: the
 * baselines held in C memory. GIL held. */
void pyhot_patch_baseline_write(struct jsonw *out);

#endif /* PYHOT_PATCH_H */
