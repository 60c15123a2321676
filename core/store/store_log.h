/* store_log.h: the append-only log engine under the default persistence store.
 *
 * The engine stores opaque records (a type byte, a key and a value) and knows nothing of
 * MQTT: the broker decides later what each type means. One writer thread owns the file.
 * Any thread appends records into the current batch; the writer writes each batch with one
 * pwrite and one fdatasync (group commit). A caller that must not acknowledge before the
 * data is durable (`persistence_sync always`) waits with cx_store_log_commit_wait().
 *
 * On disk the file starts with a 16-byte header
 *     "CULEXLOG" | u32 format version (1) | u32 crc32c of the 12 bytes before it
 * followed by records, each
 *     u32 crc32c | u32 payload_len | u8 type | u32 key_len | key | value
 * where payload_len = key_len + value_len and the CRC covers everything after itself. All
 * integers are little endian. The first record is at offset CX_STORE_LOG_HEADER_LEN.
 *
 * Open refuses (CX_EFORMAT) and never modifies a file that does not start with this
 * header. It replays the file record by record. A torn tail (a crash mid-write) is
 * truncated. Corruption (a bad checksum, an impossible length, or any damage that valid
 * records follow) first gets the whole file copied aside; replay then continues at the next
 * valid records, so nothing after the damage is lost, and the caller compacts the damaged
 * regions away. Appends go after the last valid record. See README.md for the corruption,
 * compaction and failure rules. */
#ifndef CX_STORE_LOG_H
#define CX_STORE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/str.h"

/* Size of the file header, and the format version this build writes and reads. */
#define CX_STORE_LOG_HEADER_LEN 16
#define CX_STORE_LOG_FORMAT_VERSION 1

typedef struct cx_store_log cx_store_log_t;
typedef struct cx_store_log_compactor cx_store_log_compactor_t;

typedef enum cx_store_log_sync {
    /* The writer commits as soon as anything is pending and it is free; callers that need
     * durability wait with cx_store_log_commit_wait(). */
    CX_STORE_LOG_SYNC_ALWAYS = 0,
    /* The writer commits at least every batch_ms milliseconds (or sooner when asked by
     * commit_wait, or when the pending batch reaches flush_bytes). */
    CX_STORE_LOG_SYNC_BATCH = 1,
} cx_store_log_sync_t;

typedef struct cx_store_log_opts {
    cx_store_log_sync_t sync;
    unsigned batch_ms;  /* BATCH: longest time a record waits for its commit; 0 = 100 */
    size_t flush_bytes; /* commit early when this much is pending; 0 = 1 MiB */
    size_t max_pending; /* appends block while this much is pending (back-pressure);
                           0 = 64 MiB */
    size_t max_record;  /* largest key+value accepted, and believed on replay; 0 = 256 MiB */

    /* Commit notification, e.g. to wake the worker threads that hold back PUBACKs under
     * `persistence_sync always` without a thread blocked in commit_wait. Called by the
     * writer thread with the new durable_seq each time it advances: after each successful
     * commit, and after a compaction that made earlier records durable. No engine lock is
     * held; calls never overlap and durable_seq strictly grows from one call to the next.
     * It must be quick (the next commit waits for it) and must not call append,
     * commit_wait, sync, compact or close on this store (status and stats are fine). Not
     * called when a commit fails: check cx_store_log_status(). NULL = none. */
    void (*on_commit)(void *ud, uint64_t durable_seq);
    void *on_commit_ud;

    /* Fault injection for tests: replaces fdatasync(2) for every data sync of the log and
     * of its compaction file (commits, the header of a new file, the cut after recovery,
     * the compacted file; not directory syncs). Same contract: 0, or -1 with errno set
     * (e.g. EIO). Called from the writer, the opening and the compacting threads. NULL =
     * fdatasync. */
    int (*fdatasync_fn)(int fd);
} cx_store_log_opts_t;

/* One record as replayed. Key and value point into the mapped file and are borrowed for
 * the duration of the callback only. */
typedef struct cx_store_log_rec {
    uint8_t type;
    cx_str_t key;
    cx_str_t val;
    uint64_t off; /* file offset of the record's own header (the first record is at
                     CX_STORE_LOG_HEADER_LEN) */
} cx_store_log_rec_t;

/* Called once per valid record, in file order (damaged regions are skipped). A negative
 * return aborts the open, which then fails with that code (the file is left as it was,
 * though a copy of a damaged file may already have been saved). When open fails, whatever
 * was replayed must be discarded. */
typedef int (*cx_store_log_replay_cb)(void *ud, const cx_store_log_rec_t *rec);

/* What open found. Filled (as far as open got) even when open fails. */
typedef struct cx_store_log_recovery {
    uint64_t records;       /* valid records replayed */
    uint64_t bytes_kept;    /* file size after recovery, file header (and any skipped
                               regions) included */
    uint64_t bytes_dropped; /* bytes truncated after the last valid record */
    uint64_t bytes_skipped; /* bytes of damaged regions that valid records follow: not
                               replayed, stepped over, still in the file */
    /* True when open found corruption rather than a crash mid-write: a complete record
     * with a bad checksum or an impossible header, or any damage that valid records follow.
     * Before changing anything, open then copied the whole file as found to
     * "<path>.corrupt-<unix time>" (".1", ".2", ... appended if that exists) and synced
     * it; if the copy cannot be made, open fails and leaves the file as it was. A short
     * tail with nothing valid after it is a crash mid-write: dropped, not copied. */
    bool corrupt;
    /* Valid records followed damage, so the damaged regions (bytes_skipped) are still in
     * the file. The caller must call cx_store_log_compact() right after open, once its
     * state is rebuilt from the replay. Until then appends go to the end as usual, and an
     * open before the compaction (after a crash) skips and copies the same regions again,
     * which loses nothing. */
    bool rewrite_needed;
    /* The file is a Mosquitto database (it starts with 0x00 0xB5 0x00 "mosquitto db"):
     * open failed with CX_EFORMAT and left it untouched. */
    bool mosquitto_db;
} cx_store_log_recovery_t;

/* Opens (creating if needed) the log at `path`, replays it through `cb` (may be NULL),
 * repairs a damaged tail, steps over damaged regions (see cx_store_log_recovery_t) and
 * starts the writer thread. `opts` may be NULL for defaults (ALWAYS). `rec` may be NULL.
 * Returns NULL and sets *err (-errno or a cx_err) on failure; the reason is also logged.
 * Call before other threads use the store. When rec->rewrite_needed comes back true,
 * compact before serving clients.
 *
 * A missing or empty file gets the file header, synced. A file that does not start with
 * the header (another program's file, a Mosquitto database, a damaged header, a newer
 * format version) fails with CX_EFORMAT and is never modified, truncated or renamed. The
 * exception is a file shorter than the header whose bytes are a prefix of it (a crash
 * while the file was created): its header is completed. */
cx_store_log_t *cx_store_log_open(const char *path, const cx_store_log_opts_t *opts,
                                  cx_store_log_replay_cb cb, void *ud,
                                  cx_store_log_recovery_t *rec, int *err);

/* Commits whatever is pending, stops the writer and closes the file. Every other call on
 * this store must have returned. Returns CX_OK or the store's failure code. NULL is a
 * no-op. */
int cx_store_log_close(cx_store_log_t *s);

/* Appends one record to the current batch (any thread). Key and value are copied. On
 * success *seq (may be NULL) receives the record's sequence number for commit_wait.
 * Blocks while a compaction runs and while max_pending bytes are waiting.
 * Returns CX_OK, CX_ETOOBIG (record larger than max_record), CX_ENOMEM, CX_EINVAL (called
 * from inside a compaction callback), or the store's failure code once it has failed. */
int cx_store_log_append(cx_store_log_t *s, uint8_t type, const void *key, size_t klen,
                        const void *val, size_t vlen, uint64_t *seq);

/* Waits until every record up to and including `seq` is durable (written and
 * fdatasync'ed), asking the writer to commit now rather than at its next tick. Any
 * thread. Returns CX_OK or the failure code if the store failed before that. */
int cx_store_log_commit_wait(cx_store_log_t *s, uint64_t seq);

/* commit_wait for everything appended so far. */
int cx_store_log_sync(cx_store_log_t *s);

/* CX_OK, or the first write/fsync error (e.g. -ENOSPC, -EIO, -EFBIG) that put the store
 * in the failed state. In that state appends are refused and nothing already durable is
 * touched. A successful compaction (a rewrite of live state from memory) clears it. */
int cx_store_log_status(cx_store_log_t *s);

typedef struct cx_store_log_stats {
    uint64_t appended_seq; /* last sequence number handed out */
    uint64_t durable_seq;  /* every record up to this one is durable */
    uint64_t batches;      /* commits (one write + one fdatasync each) */
    uint64_t file_size;    /* committed bytes in the file */
    uint64_t compactions;
    /* file_size right after open (after recovery) or after the last compaction: what the
     * live set cost then. Compare with file_size to decide when to compact (e.g. when
     * file_size > 2 * base_size). */
    uint64_t base_size;
} cx_store_log_stats_t;

void cx_store_log_stats(cx_store_log_t *s, cx_store_log_stats_t *out);

/* The caller's enumeration of live state for a compaction: call cx_store_log_compact_put
 * for every live record and return CX_OK, or a negative code to abort. It runs on the
 * compacting thread while appends are blocked; it must not append to this store. */
typedef int (*cx_store_log_live_cb)(void *ud, cx_store_log_compactor_t *c);

/* Writes one live record into the new file. Returns CX_OK, CX_ETOOBIG or an I/O error
 * (which the live callback should return). */
int cx_store_log_compact_put(cx_store_log_compactor_t *c, uint8_t type, const void *key,
                             size_t klen, const void *val, size_t vlen);

/* Rewrites the log as exactly the records `live` supplies: commits what is pending, blocks
 * appends, writes "<path>.compact" (file header, then the live records), fdatasyncs it,
 * renames it over the log, fsyncs the directory, then lets appends continue into the new
 * file. On failure the temporary file is removed and the old log is untouched. One
 * compaction at a time (others wait). Success clears the failed state and removes the
 * damaged regions open stepped over (recovery.rewrite_needed). Returns CX_OK, the
 * callback's error or an I/O error. */
int cx_store_log_compact(cx_store_log_t *s, cx_store_log_live_cb live, void *ud);

/* CRC32C (Castagnoli) of `n` bytes, continuing from `crc` (start with 0). Uses the SSE4.2
 * instruction on x86-64 CPUs that have it (chosen at run time) and a table elsewhere. Any
 * thread. Exposed for tests and for tools that inspect log files. */
uint32_t cx_store_crc32c(uint32_t crc, const void *p, size_t n);

/* Internal, for tests only: the table-driven implementation, whatever the CPU, so that a
 * test can check the hardware path against it. Same contract as cx_store_crc32c. */
uint32_t cx_store_crc32c_sw(uint32_t crc, const void *p, size_t n);

#endif
