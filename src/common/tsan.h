/* src/common — ThreadSanitizer annotations for synchronisation TSan cannot see.
 *
 * liburcu 0.13 implements its atomics (uatomic_xchg, cmpxchg, the membarrier
 * behind an RCU grace period) with inline assembly and volatile accesses, and
 * its cds_lfht code lives in an uninstrumented shared library, so TSan sees
 * none of the happens-before edges they create. Where kaffe hands memory from
 * one thread to another through such a structure, it states the edge
 * explicitly: TSAN_RELEASE(p) on the handing side before the publish,
 * TSAN_ACQUIRE(p) on the receiving side after the take. Outside TSan builds
 * both compile to nothing. See tests/tsan.supp for the one thing annotations
 * cannot express (liburcu's own link-field accesses). */
#ifndef KAFFE_SRC_COMMON_TSAN_H
#define KAFFE_SRC_COMMON_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define KAFFE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KAFFE_TSAN 1
#endif
#endif

#ifdef KAFFE_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define TSAN_RELEASE(p) __tsan_release((void *)(p))
#else
#define TSAN_ACQUIRE(p) ((void)(p))
#define TSAN_RELEASE(p) ((void)(p))
#endif

#endif
