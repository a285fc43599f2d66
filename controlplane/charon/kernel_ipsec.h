/* medix-cp's kernel-ipsec backend (kernel_ipsec.c), registered as a static plugin feature. */
#ifndef MEDIX_CP_CHARON_KERNEL_IPSEC_H
#define MEDIX_CP_CHARON_KERNEL_IPSEC_H

#include <kernel/kernel_ipsec.h>

kernel_ipsec_t* medix_kernel_ipsec_create(void);

#endif
