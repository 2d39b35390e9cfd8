/*
 * switch_interval.h: shorten CPython's GIL switch interval while a
 * safe-point job waits for the GIL, and put it back exactly. Private to the
 * payload.
 *
 * A thread waiting for the GIL asks the holder to drop it after one switch
 * interval (5 ms by default); on CPython 3.9 to 3.12 that request is what
 * makes a busy main thread run our pending call (docs/safepoints.md). With
 * the interval shortened to PYHOT_SWITCH_INTERVAL_US while a job waits, the
 * main thread comes by within a fraction of a millisecond.
 *
 * The interval is put back only if it still holds our value: a program that
 * set its own in between (sys.setswitchinterval) keeps it. Interpreters
 * where pending calls reach the main thread at once (3.13) need none of
 * this and get none.
 */
#ifndef PYHOT_SWITCH_INTERVAL_H
#define PYHOT_SWITCH_INTERVAL_H

/* Microseconds while a job waits. Odd, so that a program is unlikely to
 * have set the same value (which we would then put back). */
#define PYHOT_SWITCH_INTERVAL_US 47

/* Find out, once, how to read and write the interval in this interpreter.
 * GIL held (3.12 is checked by writing through CPython's own setter). Until
 * it ran, lower() does nothing on 3.12. */
void pyhot_switch_interval_learn(void);

/* The part that needs no GIL (3.8 to 3.11), so that the very first job (the
 * baseline's, which the attach waits for) gets the short interval too. */
void pyhot_switch_interval_learn_early(void);

/* Shorten the interval (no GIL needed); nested calls from several threads
 * count, and the last restore() puts the program's value back. */
void pyhot_switch_interval_lower(void);
void pyhot_switch_interval_restore(void);

/* After fork() in the child: no job of ours waits there. */
void pyhot_switch_interval_atfork_child(void);

#endif /* PYHOT_SWITCH_INTERVAL_H */
