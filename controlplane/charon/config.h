/* Force-included (-include) before every C file that includes strongSwan headers, in place of
 * the config.h that strongSwan's ./configure would write. It must describe the build of the
 * libraries we link (Debian's strongSwan 5.9.8), because some of these defines change the
 * layout of structures we share with them:
 *   ME  Debian configures --enable-mediation, which adds members to daemon_t, ike_sa_t,
 *       peer_cfg_t, peer_cfg_create_t and task_t. Without it every member after them is read
 *       at the wrong offset (charon->initialize crashes at start). test abi_test checks this.
 * The rest only select declarations (inline helpers or the library's own fallbacks) that
 * glibc and GCC provide. */
#ifndef MEDIX_CP_CHARON_CONFIG_H
#define MEDIX_CP_CHARON_CONFIG_H

#define CONFIG_H_INCLUDED 1
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* before any system header */
#endif

#define ME 1
#define USE_IKEV1 1
#define USE_IKEV2 1

#define HAVE_STDBOOL_H 1
#define HAVE_INT128 1
#define HAVE_GCC_ATOMIC_OPERATIONS 1
#define HAVE_EXPLICIT_BZERO 1
#define HAVE_CLOCK_GETTIME 1
#define HAVE_CONDATTR_CLOCK_MONOTONIC 1
#define HAVE_SIGWAITINFO 1
#define HAVE_CLOSEFROM 1
#define HAVE_MEMRCHR 1
#define HAVE_FMEMOPEN 1
#define HAVE_ALLOCA_H 1
#define HAVE_SYS_PARAM_H 1
/* glibc's printf hooks (register_printf_specifier): %H, %Y, %R, %B ... Not USE_VSTR, not
 * USE_BUILTIN_PRINTF, as Debian. */
#define HAVE_PRINTF_SPECIFIER 1

#endif
