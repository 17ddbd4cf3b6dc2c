/* sbi.h - typed calls into the Supervisor Binary Interface (SBI spec 1.0 and
 * the legacy console). Errors come back as the project's enum err. */
#ifndef SBI_H
#define SBI_H

#include <stdbool.h>
#include <stdint.h>

/* Extension ids (SBI spec, chapter 3 onwards). */
#define SBI_EXT_LEGACY_PUTCHAR 0x01
#define SBI_EXT_BASE   0x10
#define SBI_EXT_TIME   0x54494D45  /* "TIME" */
#define SBI_EXT_IPI    0x735049    /* "sPI"  */
#define SBI_EXT_RFENCE 0x52464E43  /* "RFNC" */
#define SBI_EXT_HSM    0x48534D    /* "HSM"  */
#define SBI_EXT_SRST   0x53525354  /* "SRST" */
#define SBI_EXT_DBCN   0x4442434E  /* "DBCN" */

/* HSM hart states. */
#define SBI_HSM_STARTED        0
#define SBI_HSM_STOPPED        1
#define SBI_HSM_START_PENDING  2
#define SBI_HSM_STOP_PENDING   3
#define SBI_HSM_SUSPENDED      4

/* System reset types and reasons. */
#define SBI_SRST_SHUTDOWN     0
#define SBI_SRST_COLD_REBOOT  1
#define SBI_SRST_NO_REASON    0
#define SBI_SRST_FAILURE      1

struct sbi_info {
	unsigned spec_major, spec_minor;
	unsigned long impl_id, impl_version;
	bool has_time, has_ipi, has_rfence, has_hsm, has_srst, has_dbcn;
};

/* Fill *info from the Base extension; call once on the boot hart. */
void sbi_probe(struct sbi_info *info);
const struct sbi_info *sbi_get_info(void);
const char *sbi_impl_name(unsigned long id);

/* 1 if the extension is present, 0 if not. */
long sbi_probe_extension(long ext);

void sbi_console_putchar(int ch);
/* Write n bytes at s (whose physical address is pa): the debug console
 * extension when present, else the legacy putchar per byte. */
void sbi_console_write(const char *s, unsigned long pa, unsigned long n);

int sbi_set_timer(uint64_t stime);
/* Harts are named by a mask of up to XLEN ids starting at hart_base. */
int sbi_send_ipi(unsigned long hart_mask, unsigned long hart_base);
int sbi_remote_fence_i(unsigned long hart_mask, unsigned long hart_base);
int sbi_remote_sfence_vma(unsigned long hart_mask, unsigned long hart_base,
			  unsigned long start, unsigned long size);
int sbi_remote_sfence_vma_asid(unsigned long hart_mask, unsigned long hart_base,
			       unsigned long start, unsigned long size,
			       unsigned long asid);
int sbi_hart_start(unsigned long hartid, unsigned long start_pa, unsigned long opaque);
int sbi_hart_stop(void);
/* Returns an SBI_HSM_* state (>= 0) or a negative error. */
int sbi_hart_get_status(unsigned long hartid);
/* Does not return on success. */
int sbi_system_reset(unsigned type, unsigned reason);

#endif
