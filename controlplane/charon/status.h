/* The IKE views of medix-cp (status.c): a bus logger and listener that keep each peer's last
 * errors. Started after charon->initialize, stopped before libcharon_deinit. */
#ifndef MEDIX_CP_CHARON_STATUS_H
#define MEDIX_CP_CHARON_STATUS_H

void medix_status_start(void);
void medix_status_stop(void);

#endif
