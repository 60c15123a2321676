/* time.h: monotonic and wall clocks. */
#ifndef CX_TIME_H
#define CX_TIME_H

#include <stdint.h>

/* Monotonic milliseconds since an arbitrary point. */
uint64_t cx_time_mono_ms(void);
/* Wall-clock seconds since the epoch. */
int64_t cx_time_wall_s(void);
/* Wall-clock milliseconds since the epoch (persisted deadlines). */
int64_t cx_time_wall_ms(void);

#endif
